//! What can go wrong in the store, sorted by who must act: the user (bad input, not permitted,
//! conflict) or the system (database unreachable, disk failing).

use rectify_engine::{Lang, Refusal};
use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine refused the command (bad input, a transition the rules forbid, or not permitted).
    #[error("{}", .0.message(Lang::En))]
    Refused(Refusal),
    #[error("{what} `{key}` does not exist")]
    NotFound { what: &'static str, key: String },
    #[error("{what} `{key}` already exists")]
    Duplicate { what: &'static str, key: String },
    /// Input the store rejects before the engine sees it; the message names the fix.
    #[error("{en}")]
    Invalid { zh: String, en: String },
    /// Someone changed the item between our read and our write.
    #[error(
        "item {item} was changed by someone else at the same time; nothing was written; look at it again (rectify item show {item}) and retry"
    )]
    Conflict { item: i64 },
    /// An evidence file could not be read or stored.
    #[error("{0}")]
    Evidence(String),
    #[error(
        "the database is not initialised or is older than this rectify: run `rectify init` first"
    )]
    NotInitialised,
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// What the user should do about an error: how the CLI turns it into an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Fix the input or pick an allowed transition (exit 2).
    BadInput,
    /// Ask someone with the right role (exit 3).
    Forbidden,
    /// Look again and retry (exit 4).
    Conflict,
    /// Something outside the user's input failed (exit 1).
    System,
}

impl StoreError {
    pub fn invalid(zh: impl Into<String>, en: impl Into<String>) -> Self {
        StoreError::Invalid {
            zh: zh.into(),
            en: en.into(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Refused(r) if r.is_forbidden() => ErrorClass::Forbidden,
            StoreError::Refused(_)
            | StoreError::NotFound { .. }
            | StoreError::Duplicate { .. }
            | StoreError::Invalid { .. }
            | StoreError::Evidence(_) => ErrorClass::BadInput,
            StoreError::Conflict { .. } => ErrorClass::Conflict,
            StoreError::NotInitialised | StoreError::Db(_) => ErrorClass::System,
        }
    }

    pub fn message(&self, lang: Lang) -> String {
        if lang == Lang::En {
            return self.to_string();
        }
        match self {
            StoreError::Refused(r) => r.message(lang),
            StoreError::NotFound { what, key } => {
                format!("{} “{key}” 不存在;请检查拼写,或先创建", zh_what(what))
            }
            StoreError::Duplicate { what, key } => {
                format!("{} “{key}” 已存在;请换一个编号", zh_what(what))
            }
            StoreError::Invalid { zh, .. } => zh.clone(),
            StoreError::Conflict { item } => format!(
                "事项 {item} 刚被他人修改,本次操作未写入;请重新查看(rectify item show {item})后再试"
            ),
            StoreError::Evidence(e) => format!("佐证材料处理失败:{e}"),
            StoreError::NotInitialised => {
                "数据库尚未初始化或版本过旧:请先运行 `rectify init`".to_string()
            }
            StoreError::Db(e) => format!("数据库错误:{e}"),
        }
    }
}

fn zh_what(what: &str) -> &str {
    match what {
        "unit" => "单位",
        "operator" => "操作员",
        "round" => "轮次",
        "item" => "事项",
        "extension" => "延期申请",
        "parent item" => "上级事项",
        "merge target" => "合并目标事项",
        other => other,
    }
}

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        StoreError::Refused(r)
    }
}
