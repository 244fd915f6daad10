//! The CLI's error: a message for the user and the exit code that says who must act.

use rectify_engine::{Lang, Refusal};
use rectify_schema::{ErrorClass, StoreError};

/// Exit codes (a contract): 0 done; 1 failure of the system; 2 bad input or a forbidden
/// transition; 3 not permitted for this operator; 4 conflict with a concurrent change.
#[derive(Debug)]
pub struct CliError {
    pub class: ErrorClass,
    pub message: String,
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            class: ErrorClass::BadInput,
            message: message.into(),
        }
    }

    pub fn system(message: impl Into<String>) -> Self {
        CliError {
            class: ErrorClass::System,
            message: message.into(),
        }
    }

    /// Bad input, worded in the user's language.
    pub fn bad(lang: Lang, zh: impl AsRef<str>, en: impl AsRef<str>) -> Self {
        Self::bad_input(lang.pick(zh.as_ref(), en.as_ref()))
    }

    pub fn from_store(e: StoreError, lang: Lang) -> Self {
        CliError {
            class: e.class(),
            message: e.message(lang),
        }
    }

    pub fn from_refusal(r: Refusal, lang: Lang) -> Self {
        Self::from_store(StoreError::Refused(r), lang)
    }

    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::System => 1,
            ErrorClass::BadInput => 2,
            ErrorClass::Forbidden => 3,
            ErrorClass::Conflict => 4,
        }
    }
}

/// Lets handlers use `?` on store calls once the language is known.
pub trait InLang<T> {
    fn lang(self, lang: Lang) -> CliResult<T>;
}

impl<T> InLang<T> for Result<T, StoreError> {
    fn lang(self, lang: Lang) -> CliResult<T> {
        self.map_err(|e| CliError::from_store(e, lang))
    }
}

impl<T> InLang<T> for Result<T, Refusal> {
    fn lang(self, lang: Lang) -> CliResult<T> {
        self.map_err(|e| CliError::from_refusal(e, lang))
    }
}
