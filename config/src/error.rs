//! Configuration errors. Each message names the key, where the value came from, and what to do.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file, with the line (1-based) when it is known.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable.
    Env { var: String },
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, .. } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Default => f.write_str("built-in default"),
        }
    }
}

impl Origin {
    /// `" at line 3"` for a file position, else nothing.
    fn at(&self) -> String {
        match self {
            Origin::File {
                line: Some(line), ..
            } => format!(" at line {line}"),
            _ => String::new(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named with `--config` does not exist.
    #[error(
        "config file {} does not exist; check the path, or leave out --config to use \
         ./rectify.toml or the built-in defaults (rectify.example.toml shows every key)",
        path.display()
    )]
    FileNotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error(
        "cannot read config file {}: {source}; make sure it is a readable UTF-8 text file",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid TOML.
    #[error(
        "{}: TOML syntax error{}: {message}; fix the syntax (text values need double quotes, \
         e.g. lang = \"zh\"; see rectify.example.toml)",
        path.display(),
        at_line(*line, *column)
    )]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// A key that does not exist, in the file or in a `RECTIFY__SECTION__KEY` variable.
    #[error("{origin}: unknown key `{key}`{}; {advice}", origin.at())]
    UnknownKey {
        origin: Origin,
        key: String,
        advice: String,
    },

    /// The SMTP password was written as a configuration key.
    #[error(
        "{origin}: `mail.password`{} is not allowed in the configuration; remove it and put the \
         SMTP password in the environment variable {password_env} (named by mail.password_env)",
        origin.at()
    )]
    PasswordInConfig {
        origin: Origin,
        password_env: String,
    },

    /// An environment variable of the form `RECTIFY__…` that names no key.
    #[error("environment variable {var}: {message}")]
    BadEnvName { var: String, message: String },

    /// A value that is not accepted for its key.
    #[error("{origin}: `{key}`{}: {message}", origin.at())]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// Where the offending value came from, when the error is about one value.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConfigError::UnknownKey { origin, .. }
            | ConfigError::PasswordInConfig { origin, .. }
            | ConfigError::Invalid { origin, .. } => Some(origin),
            _ => None,
        }
    }

    /// The key the error is about (`reminders.send_window`), when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::PasswordInConfig { .. } => Some("mail.password"),
            _ => None,
        }
    }
}

fn at_line(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}
