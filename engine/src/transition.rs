//! The transition function: `(item, command, actor, context) → new item + event | refusal`.
//!
//! Everything the office can do to an item goes through [`transition`]. It is a pure function: the
//! clock and the facts the store knows (how many children are still open) come in through
//! [`Ctx`], so every rule is tested without a database or a clock.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::model::{
    Actor, Cadence, Deadline, EvidenceRef, Item, ItemId, ItemState, NewItem, PendingExtension, Role,
};
use crate::{Lang, text};

/// A command an operator gives about one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Assign {
        lead_unit: String,
        co_units: Vec<String>,
        leader: Option<String>,
        deadline: Deadline,
    },
    Acknowledge,
    Progress {
        note: String,
        percent: Option<u8>,
        evidence: Vec<EvidenceRef>,
    },
    Submit {
        note: String,
        evidence: Vec<EvidenceRef>,
    },
    /// Verify and close (销号).
    Close {
        note: Option<String>,
    },
    /// Verify and keep open as a long-term item with a report cadence.
    KeepLongTerm {
        note: Option<String>,
        cadence: Cadence,
    },
    /// Send back to be redone (退回重办).
    SendBack {
        reason: String,
    },
    RequestExtension {
        to: NaiveDate,
        reason: String,
    },
    ApproveExtension {
        note: Option<String>,
    },
    RefuseExtension {
        note: Option<String>,
    },
    Reassign {
        lead_unit: String,
        reason: String,
    },
    /// Reopen after a look-back (回头看) found the problem back, optionally with a new deadline.
    Reopen {
        reason: String,
        due: Option<Deadline>,
    },
    /// Finish a long-term item.
    Finish {
        note: Option<String>,
    },
    Cancel {
        reason: String,
        merged_into: Option<ItemId>,
    },
}

/// The names of the commands, as used in messages, permissions and the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Create,
    Assign,
    Acknowledge,
    Progress,
    Submit,
    Close,
    KeepLongTerm,
    SendBack,
    RequestExtension,
    ApproveExtension,
    RefuseExtension,
    Reassign,
    Reopen,
    Finish,
    Cancel,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Create,
        Action::Assign,
        Action::Acknowledge,
        Action::Progress,
        Action::Submit,
        Action::Close,
        Action::KeepLongTerm,
        Action::SendBack,
        Action::RequestExtension,
        Action::ApproveExtension,
        Action::RefuseExtension,
        Action::Reassign,
        Action::Reopen,
        Action::Finish,
        Action::Cancel,
    ];

    /// The verb in a sentence: "only pending_verification items can be {verb}".
    pub fn verb(self, lang: Lang) -> &'static str {
        match self {
            Action::Create => lang.pick("创建", "created"),
            Action::Assign => lang.pick("交办", "assigned"),
            Action::Acknowledge => lang.pick("签收", "acknowledged"),
            Action::Progress => lang.pick("报送进展", "reported on"),
            Action::Submit => lang.pick("申请销号", "submitted for close-out"),
            Action::Close => lang.pick("验收销号", "verified"),
            Action::KeepLongTerm => lang.pick("验收转长期坚持", "verified as long-term"),
            Action::SendBack => lang.pick("退回重办", "sent back"),
            Action::RequestExtension => lang.pick("申请延期", "given an extension request"),
            Action::ApproveExtension => lang.pick("批准延期", "given an extension approval"),
            Action::RefuseExtension => lang.pick("驳回延期", "given an extension refusal"),
            Action::Reassign => lang.pick("转办", "reassigned"),
            Action::Reopen => lang.pick("重新打开", "reopened"),
            Action::Finish => lang.pick("完结", "finished"),
            Action::Cancel => lang.pick("撤销", "cancelled"),
        }
    }

    /// The event kind recorded for this action.
    pub fn event_kind(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Assign => "assigned",
            Action::Acknowledge => "acknowledged",
            Action::Progress => "progress_reported",
            Action::Submit => "submitted",
            Action::Close => "closed",
            Action::KeepLongTerm => "kept_long_term",
            Action::SendBack => "sent_back",
            Action::RequestExtension => "extension_requested",
            Action::ApproveExtension => "extension_approved",
            Action::RefuseExtension => "extension_refused",
            Action::Reassign => "reassigned",
            Action::Reopen => "reopened",
            Action::Finish => "finished",
            Action::Cancel => "cancelled",
        }
    }

    /// The states this action may start from.
    pub fn from_states(self) -> &'static [ItemState] {
        use ItemState::*;
        match self {
            Action::Create => &[],
            Action::Assign => &[Draft],
            Action::Acknowledge => &[Assigned],
            Action::Progress => &[InProgress, LongTerm],
            Action::Submit => &[InProgress],
            Action::Close | Action::KeepLongTerm | Action::SendBack => &[PendingVerification],
            Action::RequestExtension => &[Assigned, InProgress],
            Action::ApproveExtension | Action::RefuseExtension => {
                &[Assigned, InProgress, PendingVerification]
            }
            Action::Reassign => &[Assigned, InProgress],
            Action::Reopen => &[Closed, LongTerm],
            Action::Finish => &[LongTerm],
            Action::Cancel => &[Draft, Assigned, InProgress, PendingVerification, LongTerm],
        }
    }

    /// Whether an operator with this role may take this action on an item of `item_unit`.
    /// Admins may do everything; unit operators only work on their own unit's items; viewers read.
    pub fn permitted(self, actor: &Actor, item_unit: Option<&str>) -> bool {
        match actor.role {
            Role::Admin => true,
            Role::Viewer => false,
            Role::Unit => {
                matches!(
                    self,
                    Action::Acknowledge
                        | Action::Progress
                        | Action::Submit
                        | Action::RequestExtension
                ) && actor.unit.is_some()
                    && actor.unit.as_deref() == item_unit
            }
        }
    }
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Command::Assign { .. } => Action::Assign,
            Command::Acknowledge => Action::Acknowledge,
            Command::Progress { .. } => Action::Progress,
            Command::Submit { .. } => Action::Submit,
            Command::Close { .. } => Action::Close,
            Command::KeepLongTerm { .. } => Action::KeepLongTerm,
            Command::SendBack { .. } => Action::SendBack,
            Command::RequestExtension { .. } => Action::RequestExtension,
            Command::ApproveExtension { .. } => Action::ApproveExtension,
            Command::RefuseExtension { .. } => Action::RefuseExtension,
            Command::Reassign { .. } => Action::Reassign,
            Command::Reopen { .. } => Action::Reopen,
            Command::Finish { .. } => Action::Finish,
            Command::Cancel { .. } => Action::Cancel,
        }
    }
}

/// What the transition needs to know besides the item: the time, and facts the store looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// Today's date in the office's time zone: deadlines are local calendar dates.
    pub today: NaiveDate,
    /// How many children of the item are still open (not closed, not cancelled).
    pub open_children: u64,
}

/// Why a command was refused. Each says what is wrong in words a user understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The operator's role or unit does not allow this action. Exit code 3.
    Forbidden {
        actor: String,
        role: Role,
        action: Action,
        item: ItemId,
    },
    /// The item's state does not allow this action.
    WrongState {
        item: ItemId,
        state: ItemState,
        action: Action,
    },
    Empty {
        field: &'static str,
    },
    TooLong {
        field: &'static str,
        chars: usize,
        limit: usize,
    },
    ControlChar {
        field: &'static str,
        code: u32,
    },
    PercentOutOfRange(u8),
    DeadlineInPast {
        due: NaiveDate,
        today: NaiveDate,
    },
    ChildrenOpen {
        item: ItemId,
        open: u64,
    },
    ExtensionAlreadyPending {
        item: ItemId,
        to: NaiveDate,
    },
    NoExtensionPending {
        item: ItemId,
    },
    ExtensionForLongTerm {
        item: ItemId,
    },
    ExtensionAfterDeadline {
        item: ItemId,
        due: NaiveDate,
        today: NaiveDate,
    },
    ExtensionNotLater {
        to: NaiveDate,
        due: NaiveDate,
    },
    SameUnit {
        unit: String,
    },
    CoUnitIsLead {
        unit: String,
    },
    MergeIntoSelf {
        item: ItemId,
    },
}

impl Refusal {
    /// True when the refusal is about who the operator is, not about the input.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Refusal::Forbidden { .. })
    }

    pub fn message(&self, lang: Lang) -> String {
        use Refusal::*;
        let zh = lang == Lang::Zh;
        match self {
            Forbidden {
                actor,
                role,
                action: Action::Create,
                ..
            } => {
                if zh {
                    format!(
                        "操作员 {actor}(角色 {})无权创建事项:只有整改办管理员能创建事项",
                        role.label(lang)
                    )
                } else {
                    format!(
                        "operator {actor} (role {role}) may not create items: only the office's admins can"
                    )
                }
            }
            Forbidden {
                actor,
                role,
                action,
                item,
            } if *role == Role::Viewer => {
                if zh {
                    format!(
                        "操作员 {actor}(只读角色)无权对事项 {item} 执行“{}”:只读操作员只能查看",
                        action.verb(lang)
                    )
                } else {
                    format!(
                        "operator {actor} (role viewer) may not have item {item} {}: viewers can only read",
                        action.verb(lang)
                    )
                }
            }
            Forbidden {
                actor,
                role,
                action,
                item,
            } => {
                if zh {
                    format!(
                        "操作员 {actor}(角色 {})无权对事项 {item} 执行“{}”:责任单位操作员只能签收、报送进展、申请销号和申请延期,且只能处理本单位事项;请由整改办管理员操作",
                        role.label(lang),
                        action.verb(lang)
                    )
                } else {
                    format!(
                        "operator {actor} (role {role}) may not have item {item} {}: unit operators may only acknowledge, report progress, submit and request extensions on their own unit's items; ask an admin of the office",
                        action.verb(lang)
                    )
                }
            }
            WrongState {
                item,
                state,
                action,
            } => {
                let allowed: Vec<&str> = action
                    .from_states()
                    .iter()
                    .map(|s| if zh { s.label(lang) } else { s.as_str() })
                    .collect();
                if zh {
                    format!(
                        "事项 {item} 当前状态为“{}”;只有“{}”状态的事项才能{}",
                        state.label(lang),
                        allowed.join("”或“"),
                        action.verb(lang)
                    )
                } else {
                    format!(
                        "item {item} is {state}; only {} items can be {}",
                        allowed.join(" or "),
                        action.verb(lang)
                    )
                }
            }
            Empty { field } => {
                if zh {
                    format!("{} 不能为空", field_label(field, lang))
                } else {
                    format!("{field} must not be empty")
                }
            }
            TooLong {
                field,
                chars,
                limit,
            } => {
                if zh {
                    format!(
                        "{} 过长({chars} 字),最多 {limit} 字;请精简或把详细内容作为佐证材料上传",
                        field_label(field, lang)
                    )
                } else {
                    format!(
                        "{field} is too long ({chars} characters; at most {limit}); shorten it or attach the details as evidence"
                    )
                }
            }
            ControlChar { field, code } => {
                if zh {
                    format!(
                        "{} 含有控制字符 U+{code:04X};请删除后重试",
                        field_label(field, lang)
                    )
                } else {
                    format!("{field} contains the control character U+{code:04X}; remove it")
                }
            }
            PercentOutOfRange(p) => {
                if zh {
                    format!("完成百分比 {p} 超出范围;请填写 0 到 100 之间的整数")
                } else {
                    format!("percent {p} is out of range; give a whole number from 0 to 100")
                }
            }
            DeadlineInPast { due, today } => {
                if zh {
                    format!("完成时限 {due} 早于今天 {today};请给出今天或以后的日期")
                } else {
                    format!(
                        "the deadline {due} is before today ({today}); give today or a later date"
                    )
                }
            }
            ChildrenOpen { item, open } => {
                if zh {
                    format!("事项 {item} 还有 {open} 个下级事项未销号或撤销;请先办结下级事项")
                } else {
                    format!(
                        "item {item} still has {open} open child item(s); close or cancel them first"
                    )
                }
            }
            ExtensionAlreadyPending { item, to } => {
                if zh {
                    format!("事项 {item} 已有一个待审批的延期申请(延至 {to});请先批准或驳回")
                } else {
                    format!(
                        "item {item} already has an extension request waiting (to {to}); approve or refuse it first"
                    )
                }
            }
            NoExtensionPending { item } => {
                if zh {
                    format!("事项 {item} 没有待审批的延期申请")
                } else {
                    format!("item {item} has no extension request waiting")
                }
            }
            ExtensionForLongTerm { item } => {
                if zh {
                    format!("事项 {item} 为长期坚持事项,没有完成时限,无需延期")
                } else {
                    format!("item {item} is long-term and has no deadline to extend")
                }
            }
            ExtensionAfterDeadline { item, due, today } => {
                if zh {
                    format!(
                        "事项 {item} 的完成时限 {due} 已过(今天 {today});延期须在时限届满前申请"
                    )
                } else {
                    format!(
                        "item {item} was due {due} and today is {today}; an extension must be requested before the deadline"
                    )
                }
            }
            ExtensionNotLater { to, due } => {
                if zh {
                    format!("延期后的日期 {to} 必须晚于当前完成时限 {due}")
                } else {
                    format!("the new date {to} must be later than the current deadline {due}")
                }
            }
            SameUnit { unit } => {
                if zh {
                    format!("事项已由 {unit} 牵头;转办须指定另一个单位")
                } else {
                    format!("the item is already led by {unit}; reassign it to another unit")
                }
            }
            CoUnitIsLead { unit } => {
                if zh {
                    format!("{unit} 是牵头单位,不能同时作为配合单位")
                } else {
                    format!("{unit} is the lead unit and cannot also be a cooperating unit")
                }
            }
            MergeIntoSelf { item } => {
                if zh {
                    format!("事项 {item} 不能合并到自身")
                } else {
                    format!("item {item} cannot be merged into itself")
                }
            }
        }
    }
}

fn field_label(field: &str, lang: Lang) -> &str {
    if lang == Lang::En {
        return field;
    }
    match field {
        "title" => "标题",
        "note" => "说明",
        "reason" => "理由",
        "number" => "编号",
        "leader" => "责任领导",
        "lead unit" => "牵头单位",
        "cooperating unit" => "配合单位",
        "round" => "轮次",
        _ => field,
    }
}

/// The one event a successful command records.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: &'static str,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub payload: Value,
    pub evidence: Vec<EvidenceRef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub item: Item,
    pub event: Event,
}

fn check_allowed(item: &Item, action: Action, actor: &Actor) -> Result<(), Refusal> {
    if !action.permitted(actor, item.lead_unit.as_deref()) {
        return Err(Refusal::Forbidden {
            actor: actor.name.clone(),
            role: actor.role,
            action,
            item: item.id,
        });
    }
    if !action.from_states().contains(&item.state) {
        return Err(Refusal::WrongState {
            item: item.id,
            state: item.state,
            action,
        });
    }
    Ok(())
}

fn check_deadline(deadline: Deadline, today: NaiveDate) -> Result<(), Refusal> {
    if let Deadline::Date(due) = deadline
        && due < today
    {
        return Err(Refusal::DeadlineInPast { due, today });
    }
    Ok(())
}

fn clean_units(lead: &str, co_units: &[String]) -> Result<Vec<String>, Refusal> {
    let mut out: Vec<String> = Vec::new();
    for u in co_units {
        let u = text::name("cooperating unit", u)?;
        if u == lead {
            return Err(Refusal::CoUnitIsLead { unit: u });
        }
        if !out.contains(&u) {
            out.push(u);
        }
    }
    Ok(out)
}

/// Creates an item from what the office typed or imported. The item starts as a draft; the caller
/// assigns it with a second [`transition`] when it already has a lead unit and a deadline.
pub fn create(new: &NewItem, id: ItemId, actor: &Actor, ctx: &Ctx) -> Result<Outcome, Refusal> {
    if actor.role != Role::Admin {
        return Err(Refusal::Forbidden {
            actor: actor.name.clone(),
            role: actor.role,
            action: Action::Create,
            item: id,
        });
    }
    let title = text::title("title", &new.title)?;
    let round = text::name("round", &new.round)?;
    let number = if new.number.trim().is_empty() {
        String::new()
    } else {
        text::name("number", &new.number)?
    };
    let leader = match &new.leader {
        Some(l) => Some(text::name("leader", l)?),
        None => None,
    };
    let lead_unit = match &new.lead_unit {
        Some(l) => Some(text::name("lead unit", l)?),
        None => None,
    };
    let co_units = clean_units(lead_unit.as_deref().unwrap_or(""), &new.co_units)?;
    let item = Item {
        id,
        round,
        parent_id: new.parent_id,
        number,
        title,
        lead_unit,
        co_units,
        leader,
        deadline: new.deadline,
        state: ItemState::Draft,
        version: 1,
        deadline_version: 0,
        send_backs: 0,
        reassignments: 0,
        cadence: None,
        pending_extension: None,
        merged_into: None,
        progress_percent: None,
        last_progress: None,
        created_at: ctx.now,
        assigned_at: None,
        acknowledged_at: None,
        last_progress_at: None,
        submitted_at: None,
        closed_at: None,
    };
    let payload = json!({
        "round": item.round,
        "parent_id": item.parent_id,
        "number": item.number,
        "title": item.title,
        "lead_unit": item.lead_unit,
        "co_units": item.co_units,
        "leader": item.leader,
        "deadline": item.deadline.map(|d| d.to_db()),
    });
    Ok(Outcome {
        event: Event {
            kind: Action::Create.event_kind(),
            actor: actor.name.clone(),
            at: ctx.now,
            payload,
            evidence: Vec::new(),
        },
        item,
    })
}

/// Applies one command to one item. Returns the item as it must be stored (version + 1) and the
/// event to append, or the reason the command is refused. Nothing else changes.
pub fn transition(
    item: &Item,
    command: &Command,
    actor: &Actor,
    ctx: &Ctx,
) -> Result<Outcome, Refusal> {
    let action = command.action();
    check_allowed(item, action, actor)?;
    let mut next = item.clone();
    next.version = item.version + 1;
    let mut evidence = Vec::new();
    let payload = match command {
        Command::Assign {
            lead_unit,
            co_units,
            leader,
            deadline,
        } => {
            let lead = text::name("lead unit", lead_unit)?;
            let co = clean_units(&lead, co_units)?;
            let leader = match leader {
                Some(l) => Some(text::name("leader", l)?),
                None => item.leader.clone(),
            };
            check_deadline(*deadline, ctx.today)?;
            next.lead_unit = Some(lead);
            next.co_units = co;
            next.leader = leader;
            next.deadline = Some(*deadline);
            next.deadline_version = item.deadline_version + 1;
            next.state = ItemState::Assigned;
            next.assigned_at = Some(ctx.now);
            json!({
                "lead_unit": next.lead_unit,
                "co_units": next.co_units,
                "leader": next.leader,
                "deadline": deadline.to_db(),
            })
        }
        Command::Acknowledge => {
            next.state = ItemState::InProgress;
            next.acknowledged_at = Some(ctx.now);
            json!({})
        }
        Command::Progress {
            note,
            percent,
            evidence: files,
        } => {
            let note = text::note("note", note)?;
            if let Some(p) = percent
                && *p > 100
            {
                return Err(Refusal::PercentOutOfRange(*p));
            }
            next.last_progress = Some(note.clone());
            next.last_progress_at = Some(ctx.now);
            if percent.is_some() {
                next.progress_percent = *percent;
            }
            evidence = files.clone();
            json!({ "note": note, "percent": percent })
        }
        Command::Submit {
            note,
            evidence: files,
        } => {
            let note = text::note("note", note)?;
            next.state = ItemState::PendingVerification;
            next.submitted_at = Some(ctx.now);
            next.last_progress = Some(note.clone());
            next.last_progress_at = Some(ctx.now);
            evidence = files.clone();
            json!({ "note": note })
        }
        Command::Close { note } => {
            let note = text::optional_note("note", note.as_deref())?;
            check_children(item, ctx)?;
            next.state = ItemState::Closed;
            next.closed_at = Some(ctx.now);
            next.pending_extension = None;
            json!({ "note": note })
        }
        Command::KeepLongTerm { note, cadence } => {
            let note = text::optional_note("note", note.as_deref())?;
            next.state = ItemState::LongTerm;
            next.cadence = Some(*cadence);
            next.pending_extension = None;
            json!({ "note": note, "cadence": cadence.as_str() })
        }
        Command::SendBack { reason } => {
            let reason = text::note("reason", reason)?;
            next.state = ItemState::InProgress;
            next.send_backs = item.send_backs + 1;
            next.submitted_at = None;
            json!({ "reason": reason, "send_backs": next.send_backs })
        }
        Command::RequestExtension { to, reason } => {
            let reason = text::note("reason", reason)?;
            if let Some(p) = &item.pending_extension {
                return Err(Refusal::ExtensionAlreadyPending {
                    item: item.id,
                    to: p.to,
                });
            }
            let due = match item.deadline {
                Some(Deadline::Date(d)) => d,
                _ => return Err(Refusal::ExtensionForLongTerm { item: item.id }),
            };
            if ctx.today > due {
                return Err(Refusal::ExtensionAfterDeadline {
                    item: item.id,
                    due,
                    today: ctx.today,
                });
            }
            if *to <= due {
                return Err(Refusal::ExtensionNotLater { to: *to, due });
            }
            next.pending_extension = Some(PendingExtension {
                to: *to,
                reason: reason.clone(),
                requested_by: actor.name.clone(),
            });
            json!({ "to": to.format("%Y-%m-%d").to_string(), "from": due.format("%Y-%m-%d").to_string(), "reason": reason })
        }
        Command::ApproveExtension { note } => {
            let note = text::optional_note("note", note.as_deref())?;
            let Some(p) = &item.pending_extension else {
                return Err(Refusal::NoExtensionPending { item: item.id });
            };
            next.deadline = Some(Deadline::Date(p.to));
            next.deadline_version = item.deadline_version + 1;
            next.pending_extension = None;
            json!({
                "to": p.to.format("%Y-%m-%d").to_string(),
                "from": item.deadline.map(|d| d.to_db()),
                "note": note,
            })
        }
        Command::RefuseExtension { note } => {
            let note = text::optional_note("note", note.as_deref())?;
            let Some(p) = &item.pending_extension else {
                return Err(Refusal::NoExtensionPending { item: item.id });
            };
            next.pending_extension = None;
            json!({ "to": p.to.format("%Y-%m-%d").to_string(), "note": note })
        }
        Command::Reassign { lead_unit, reason } => {
            let lead = text::name("lead unit", lead_unit)?;
            let reason = text::note("reason", reason)?;
            if item.lead_unit.as_deref() == Some(lead.as_str()) {
                return Err(Refusal::SameUnit { unit: lead });
            }
            next.co_units.retain(|u| u != &lead);
            next.lead_unit = Some(lead.clone());
            next.state = ItemState::Assigned;
            next.reassignments = item.reassignments + 1;
            next.assigned_at = Some(ctx.now);
            next.acknowledged_at = None;
            next.pending_extension = None;
            json!({
                "from": item.lead_unit,
                "to": lead,
                "reason": reason,
                "reassignments": next.reassignments,
            })
        }
        Command::Reopen { reason, due } => {
            let reason = text::note("reason", reason)?;
            if let Some(d) = due {
                check_deadline(*d, ctx.today)?;
                next.deadline = Some(*d);
                next.deadline_version = item.deadline_version + 1;
            }
            next.state = ItemState::InProgress;
            next.closed_at = None;
            next.submitted_at = None;
            next.cadence = None;
            json!({ "reason": reason, "from": item.state.as_str(), "deadline": due.map(|d| d.to_db()) })
        }
        Command::Finish { note } => {
            let note = text::optional_note("note", note.as_deref())?;
            check_children(item, ctx)?;
            next.state = ItemState::Closed;
            next.closed_at = Some(ctx.now);
            json!({ "note": note })
        }
        Command::Cancel {
            reason,
            merged_into,
        } => {
            let reason = text::note("reason", reason)?;
            if *merged_into == Some(item.id) {
                return Err(Refusal::MergeIntoSelf { item: item.id });
            }
            next.state = ItemState::Cancelled;
            next.merged_into = *merged_into;
            next.pending_extension = None;
            json!({ "reason": reason, "merged_into": merged_into, "from": item.state.as_str() })
        }
    };
    Ok(Outcome {
        item: next,
        event: Event {
            kind: action.event_kind(),
            actor: actor.name.clone(),
            at: ctx.now,
            payload,
            evidence,
        },
    })
}

fn check_children(item: &Item, ctx: &Ctx) -> Result<(), Refusal> {
    if ctx.open_children > 0 {
        return Err(Refusal::ChildrenOpen {
            item: item.id,
            open: ctx.open_children,
        });
    }
    Ok(())
}
