//! One handler per verb. Each turns arguments into an engine command, lets the store apply it,
//! and prints the result.

use rectify_engine::calendar::WorkCalendar;
use rectify_engine::model::parse_cli_date;
use rectify_engine::{Cadence, Command, Deadline, Item, ItemState, Lang, NewItem, Role, Source};
use rectify_schema::{ItemFilter, Operator, Round, Store, Unit};
use serde_json::json;

use crate::app::App;
use crate::cli::*;
use crate::error::{CliError, CliResult, InLang};
use crate::output;

pub async fn run(app: &App, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Init { admin } => init(app, admin).await,
        Cmd::Unit(c) => unit(app, c).await,
        Cmd::Operator(c) => operator(app, c).await,
        Cmd::Round(c) => round(app, c).await,
        Cmd::Item(c) => item(app, c).await,
        Cmd::Assign {
            id,
            lead,
            due,
            co,
            leader,
        } => {
            let deadline =
                deadline(app.lang, due.due.as_deref(), due.long_term)?.ok_or_else(|| {
                    CliError::bad(
                        app.lang,
                        "请给出 --due 日期或 --long-term",
                        "give --due DATE or --long-term",
                    )
                })?;
            lifecycle(
                app,
                id,
                Command::Assign {
                    lead_unit: lead,
                    co_units: co,
                    leader,
                    deadline,
                },
                &[],
            )
            .await
        }
        Cmd::Ack { id } => lifecycle(app, id, Command::Acknowledge, &[]).await,
        Cmd::Progress {
            id,
            note,
            percent,
            evidence,
        } => {
            lifecycle(
                app,
                id,
                Command::Progress {
                    note,
                    percent,
                    evidence: vec![],
                },
                &evidence,
            )
            .await
        }
        Cmd::Submit { id, note, evidence } => {
            lifecycle(
                app,
                id,
                Command::Submit {
                    note,
                    evidence: vec![],
                },
                &evidence,
            )
            .await
        }
        Cmd::Verify {
            id,
            note,
            long_term,
            cadence,
        } => {
            let cmd = match (long_term, cadence) {
                (true, Some(c)) => Command::KeepLongTerm {
                    note,
                    cadence: match c {
                        CadenceArg::Monthly => Cadence::Monthly,
                        CadenceArg::Quarterly => Cadence::Quarterly,
                    },
                },
                (false, Some(_)) => {
                    return Err(CliError::bad(
                        app.lang,
                        "--cadence 只能与 --long-term 一起使用",
                        "--cadence goes with --long-term",
                    ));
                }
                _ => Command::Close { note },
            };
            lifecycle(app, id, cmd, &[]).await
        }
        Cmd::Reject { id, reason } => lifecycle(app, id, Command::SendBack { reason }, &[]).await,
        Cmd::Extend { id, to, reason } => {
            let to = parse_date(app.lang, &to)?;
            lifecycle(app, id, Command::RequestExtension { to, reason }, &[]).await
        }
        Cmd::Extension(c) => {
            let (ext_id, cmd) = match c {
                ExtensionCmd::Approve { ext_id, note } => {
                    (ext_id, Command::ApproveExtension { note })
                }
                ExtensionCmd::Refuse { ext_id, note } => {
                    (ext_id, Command::RefuseExtension { note })
                }
            };
            let store = app.open_planned().await?;
            let id = store.pending_extension_item(ext_id).await.lang(app.lang)?;
            apply_and_print(app, &store, id, cmd, &[]).await
        }
        Cmd::Reassign { id, lead, reason } => {
            lifecycle(
                app,
                id,
                Command::Reassign {
                    lead_unit: lead,
                    reason,
                },
                &[],
            )
            .await
        }
        Cmd::Reopen { id, reason, due } => {
            let due = match due {
                Some(d) => Some(Deadline::Date(parse_date(app.lang, &d)?)),
                None => None,
            };
            lifecycle(app, id, Command::Reopen { reason, due }, &[]).await
        }
        Cmd::Finish { id, note } => lifecycle(app, id, Command::Finish { note }, &[]).await,
        Cmd::Cancel {
            id,
            reason,
            merged_into,
        } => {
            lifecycle(
                app,
                id,
                Command::Cancel {
                    reason,
                    merged_into,
                },
                &[],
            )
            .await
        }
        Cmd::Audit(AuditCmd::Verify {
            file: Some(file),
            public_key,
            ..
        }) => audit_verify_file(app, &file, public_key.as_deref()),
        Cmd::Audit(AuditCmd::Verify { evidence, .. }) => audit_verify(app, evidence).await,
        Cmd::Audit(AuditCmd::Export {
            item,
            round,
            output,
            sign_key,
        }) => audit_export(app, item, round, output, sign_key).await,
        Cmd::Audit(AuditCmd::Keygen { output }) => audit_keygen(app, &output),
        Cmd::Calendar(c) => calendar(app, c),
        Cmd::Config(ConfigCmd::Show) => {
            if let Some(f) = &app.config_file {
                println!("# {}: {}", app.lang.pick("配置文件", "file"), f.display());
            }
            print!("{}", app.settings.to_redacted_toml());
            Ok(())
        }
        Cmd::Config(ConfigCmd::Example) => {
            print!("{}", rectify_config::EXAMPLE_TOML);
            Ok(())
        }
        Cmd::Serve { log_format } => crate::remind_cmd::serve(app, log_format).await,
        Cmd::Remind(c) => crate::remind_cmd::remind(app, c).await,
        Cmd::Outbox(c) => crate::remind_cmd::outbox(app, c).await,
        Cmd::Demo { dir } => crate::demo::run(app, dir).await,
        Cmd::Import(c) => crate::import_cmd::run(app, c).await,
        Cmd::Export(c) => crate::export::run(app, c).await,
        Cmd::Report(a) => crate::report::run(app, a).await,
    }
}

fn parse_date(lang: Lang, s: &str) -> CliResult<chrono::NaiveDate> {
    parse_cli_date(s).map_err(|en| {
        CliError::bad(
            lang,
            format!("“{s}”不是有效日期;请写成 YYYY-MM-DD,例如 2026-06-30"),
            en,
        )
    })
}

fn deadline(lang: Lang, due: Option<&str>, long_term: bool) -> CliResult<Option<Deadline>> {
    match (due, long_term) {
        (Some(d), _) => Ok(Some(Deadline::Date(parse_date(lang, d)?))),
        (None, true) => Ok(Some(Deadline::LongTerm)),
        (None, false) => Ok(None),
    }
}

/// The traffic light of each item today.
pub fn lights_of(app: &App, items: &[Item]) -> Vec<Option<rectify_engine::Light>> {
    let cal = calendar_for(app);
    let policy = crate::remind_cmd::light_policy(app);
    let tz = app.tz;
    let today = app.today();
    items
        .iter()
        .map(|i| {
            rectify_engine::light::light(i, today, &cal, &policy, &|t| {
                t.with_timezone(&tz).date_naive()
            })
        })
        .collect()
}

fn print_item(app: &App, item: &Item) {
    if app.json() {
        let mut v = output::item_json(item);
        v["light"] = json!(lights_of(app, std::slice::from_ref(item))[0].map(|l| l.as_str()));
        println!("{v}");
    } else {
        print!("{}", output::item_detail(item, app.lang, app.tz));
    }
}

async fn lifecycle(app: &App, id: i64, cmd: Command, evidence: &[std::path::PathBuf]) -> CliResult {
    let store = app.open().await?;
    apply_and_print(app, &store, id, cmd, evidence).await
}

async fn apply_and_print(
    app: &App,
    store: &Store,
    id: i64,
    mut cmd: Command,
    evidence: &[std::path::PathBuf],
) -> CliResult {
    let actor = app.actor(store).await?;
    if !evidence.is_empty() {
        // Check the operator's rights, the transition and every file before copying any file,
        // so a refused command leaves nothing behind in the evidence folder.
        let item = store.get_item(id).await.lang(app.lang)?;
        rectify_engine::transition(&item, &cmd, &actor, &ctx_for(app)).lang(app.lang)?;
        rectify_schema::evidence_files::check_readable(evidence).lang(app.lang)?;
        let files = store.store_evidence(evidence).lang(app.lang)?;
        match &mut cmd {
            Command::Progress { evidence, .. } | Command::Submit { evidence, .. } => {
                *evidence = files
            }
            _ => {}
        }
    }
    let item = store
        .apply(id, &cmd, &actor, app.now, app.today())
        .await
        .lang(app.lang)?;
    print_item(app, &item);
    Ok(())
}

fn ctx_for(app: &App) -> rectify_engine::Ctx {
    rectify_engine::Ctx {
        now: app.now,
        today: app.today(),
        open_children: 0,
    }
}

async fn init(app: &App, admin: Option<String>) -> CliResult {
    let store = app.open_raw().await?;
    store.migrate().await.map_err(|e| {
        CliError::system(format!(
            "{}{}",
            app.lang.pick("数据库迁移失败:", "migration failed: "),
            e.message(app.lang)
        ))
    })?;
    let operators = store.list_operators().await.lang(app.lang)?;
    let has_admin = operators.iter().any(|o| o.role == Role::Admin);
    let created = match (admin, has_admin) {
        (Some(name), _) if operators.iter().any(|o| o.name == name) => None,
        (Some(name), _) => Some(name),
        (None, false) => Some("admin".to_string()),
        (None, true) => None,
    };
    if let Some(name) = &created {
        store
            .add_operator(
                &Operator {
                    name: name.clone(),
                    role: Role::Admin,
                    unit: None,
                    email: None,
                },
                app.now,
            )
            .await
            .lang(app.lang)?;
    }
    let url = app.settings.database.redacted_url();
    if app.json() {
        println!("{}", json!({ "database": url, "admin_created": created }));
    } else {
        match app.lang {
            Lang::Zh => {
                println!("数据库已就绪:{url}");
                if let Some(n) = created {
                    println!("已创建管理员:{n}");
                }
            }
            Lang::En => {
                println!("database ready: {url}");
                if let Some(n) = created {
                    println!("admin created: {n}");
                }
            }
        }
    }
    Ok(())
}

async fn admin_store(app: &App) -> CliResult<(Store, rectify_engine::Actor)> {
    let store = app.open().await?;
    let actor = app.actor(&store).await?;
    if actor.role != Role::Admin {
        return Err(CliError {
            class: rectify_schema::ErrorClass::Forbidden,
            message: match app.lang {
                Lang::Zh => format!(
                    "操作员 {} 不是管理员;只有整改办管理员能维护单位、操作员和轮次",
                    actor.name
                ),
                Lang::En => format!(
                    "operator {} is not an admin; only the office's admins manage units, operators and rounds",
                    actor.name
                ),
            },
        });
    }
    Ok((store, actor))
}

/// Prints records: JSON (one object after `add`, an array for `list`) or an aligned table.
fn print_records<T: serde::Serialize>(
    app: &App,
    records: &[T],
    single: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    if app.json() {
        match (single, records) {
            (true, [one]) => println!("{}", json!(one)),
            _ => println!("{}", json!(records)),
        }
        return;
    }
    let mut t = output::Table::new(headers);
    for r in records {
        t.row(row(r));
    }
    print!("{}", t.render());
}

fn print_units(app: &App, units: &[Unit], single: bool) {
    let l = app.lang;
    print_records(
        app,
        units,
        single,
        &[
            l.pick("编号", "Code"),
            l.pick("名称", "Name"),
            l.pick("上级", "Parent"),
            l.pick("责任领导", "Leader"),
            l.pick("邮箱", "Emails"),
        ],
        |u| {
            vec![
                u.code.clone(),
                u.name.clone(),
                u.parent.clone().unwrap_or_else(|| "-".into()),
                u.leader.clone().unwrap_or_else(|| "-".into()),
                u.emails.join(", "),
            ]
        },
    );
}

fn print_operators(app: &App, ops: &[Operator], single: bool) {
    let l = app.lang;
    print_records(
        app,
        ops,
        single,
        &[
            l.pick("姓名", "Name"),
            l.pick("角色", "Role"),
            l.pick("单位", "Unit"),
            l.pick("邮箱", "Email"),
        ],
        |o| {
            vec![
                o.name.clone(),
                o.role.label(l).to_string(),
                o.unit.clone().unwrap_or_else(|| "-".into()),
                o.email.clone().unwrap_or_else(|| "-".into()),
            ]
        },
    );
}

fn print_rounds(app: &App, rounds: &[Round], single: bool) {
    let l = app.lang;
    print_records(
        app,
        rounds,
        single,
        &[
            l.pick("编号", "Code"),
            l.pick("名称", "Title"),
            l.pick("来源", "Source"),
        ],
        |r| {
            vec![
                r.code.clone(),
                r.title.clone(),
                r.source.label(l).to_string(),
            ]
        },
    );
}

async fn unit(app: &App, c: UnitCmd) -> CliResult {
    match c {
        UnitCmd::Add {
            code,
            name,
            parent,
            emails,
            leader,
            leader_email,
            aliases,
        } => {
            let (store, _) = admin_store(app).await?;
            let u = store
                .add_unit(
                    &Unit {
                        code,
                        name,
                        parent,
                        emails,
                        leader,
                        leader_email,
                        aliases,
                    },
                    app.now,
                )
                .await
                .lang(app.lang)?;
            print_units(app, &[u], true);
        }
        UnitCmd::List => {
            let store = app.open().await?;
            let units = store.list_units().await.lang(app.lang)?;
            print_units(app, &units, false);
        }
    }
    Ok(())
}

async fn operator(app: &App, c: OperatorCmd) -> CliResult {
    match c {
        OperatorCmd::Add {
            name,
            role,
            unit,
            email,
        } => {
            let role: Role = role.parse().map_err(|e: String| CliError::bad_input(e))?;
            let (store, _) = admin_store(app).await?;
            let o = store
                .add_operator(
                    &Operator {
                        name,
                        role,
                        unit,
                        email,
                    },
                    app.now,
                )
                .await
                .lang(app.lang)?;
            print_operators(app, &[o], true);
        }
        OperatorCmd::List => {
            let store = app.open().await?;
            let ops = store.list_operators().await.lang(app.lang)?;
            print_operators(app, &ops, false);
        }
    }
    Ok(())
}

async fn round(app: &App, c: RoundCmd) -> CliResult {
    match c {
        RoundCmd::Add {
            code,
            title,
            source,
        } => {
            let source: Source = source.parse().map_err(|e: String| CliError::bad_input(e))?;
            let (store, _) = admin_store(app).await?;
            let r = store
                .add_round(
                    &Round {
                        code,
                        title,
                        source,
                    },
                    app.now,
                )
                .await
                .lang(app.lang)?;
            print_rounds(app, &[r], true);
        }
        RoundCmd::List => {
            let store = app.open().await?;
            let rounds = store.list_rounds().await.lang(app.lang)?;
            print_rounds(app, &rounds, false);
        }
    }
    Ok(())
}

async fn item(app: &App, c: ItemCmd) -> CliResult {
    match c {
        ItemCmd::Add {
            round,
            title,
            parent,
            number,
            lead,
            co,
            leader,
            due,
        } => {
            let deadline = deadline(app.lang, due.due.as_deref(), due.long_term)?;
            let store = app.open_planned().await?;
            let actor = app.actor(&store).await?;
            let item = store
                .create_item(
                    &NewItem {
                        round,
                        parent_id: parent,
                        number: number.unwrap_or_default(),
                        title,
                        lead_unit: lead,
                        co_units: co,
                        leader,
                        deadline,
                    },
                    &actor,
                    app.now,
                    app.today(),
                )
                .await
                .lang(app.lang)?;
            print_item(app, &item);
        }
        ItemCmd::List {
            round,
            unit,
            state,
            overdue,
            light,
        } => {
            let want: Option<rectify_engine::Light> = match light {
                Some(l) => Some(l.parse().map_err(|e: String| CliError::bad_input(e))?),
                None => None,
            };
            let state: Option<ItemState> = match state {
                Some(s) => Some(s.parse().map_err(|e: String| CliError::bad_input(e))?),
                None => None,
            };
            let store = app.open().await?;
            let items = store
                .list_items(&ItemFilter {
                    round,
                    unit,
                    state,
                    overdue_on: overdue.then(|| app.today()),
                })
                .await
                .lang(app.lang)?;
            let lights = lights_of(app, &items);
            let (items, lights): (Vec<Item>, Vec<_>) = items
                .into_iter()
                .zip(lights)
                .filter(|(_, l)| want.is_none() || *l == want)
                .unzip();
            if app.json() {
                let v: Vec<_> = items
                    .iter()
                    .zip(&lights)
                    .map(|(i, l)| {
                        let mut v = output::item_json(i);
                        v["light"] = json!(l.map(|l| l.as_str()));
                        v
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                print!("{}", output::items_table(&items, &lights, app.lang));
            }
        }
        ItemCmd::Show { id } => {
            let store = app.open().await?;
            let item = store.get_item(id).await.lang(app.lang)?;
            let exts = store.extensions(id).await.lang(app.lang)?;
            if app.json() {
                let mut v = output::item_json(&item);
                v["extensions"] =
                    json!(exts.iter().map(|e| json!({
                    "id": e.id, "from": e.from_deadline, "to": e.requested_to,
                    "reason": e.reason, "state": e.state, "requested_by": e.requested_by,
                    "decided_by": e.decided_by, "note": e.note,
                })).collect::<Vec<_>>());
                println!("{v}");
            } else {
                print!("{}", output::item_detail(&item, app.lang, app.tz));
                for e in exts {
                    println!(
                        "{} #{}: {} → {} ({}) {}",
                        app.lang.pick("延期申请", "extension"),
                        e.id,
                        e.from_deadline,
                        e.requested_to,
                        e.state,
                        e.reason
                    );
                }
            }
        }
        ItemCmd::History { id } => {
            let store = app.open().await?;
            let h = store.history(id).await.lang(app.lang)?;
            if app.json() {
                println!("{}", json!(h));
            } else {
                print!("{}", output::history_table(&h, app.lang, app.tz));
            }
        }
    }
    Ok(())
}

async fn audit_verify(app: &App, check_files: bool) -> CliResult {
    let store = app.open().await?;
    let (items, events, findings) = store.audit_verify(check_files).await.lang(app.lang)?;
    if app.json() {
        println!(
            "{}",
            json!({
                "items": items,
                "events": events,
                "intact": findings.is_empty(),
                "findings": findings.iter().map(|f| json!({
                    "item_id": f.item_id,
                    "message": f.fault.describe(f.item_id, app.lang),
                })).collect::<Vec<_>>(),
            })
        );
    } else if findings.is_empty() {
        match app.lang {
            Lang::Zh => println!("记录完整:已核验 {items} 个事项、{events} 条记录"),
            Lang::En => println!("record intact: {items} items, {events} events verified"),
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    for f in &findings {
        eprintln!("{}", f.fault.describe(f.item_id, app.lang));
    }
    Err(CliError::system(match app.lang {
        Lang::Zh => format!(
            "记录链被破坏:发现 {} 处问题(见上);数据库曾被绕过本工具改动,请从备份核对",
            findings.len()
        ),
        Lang::En => format!(
            "the record is broken: {} finding(s) above; the database was changed behind the tool's back; compare with a backup",
            findings.len()
        ),
    }))
}

/// Writes a new ed25519 signing key (32 random bytes, hex) readable by its owner only.
fn audit_keygen(app: &App, output: &std::path::Path) -> CliResult {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let lang = app.lang;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| CliError::system(format!("cannot read /dev/urandom: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CliError::bad(
                    lang,
                    format!("{} 已存在;密钥不会被覆盖,请换一个文件名", output.display()),
                    format!(
                        "{} exists; a key is never overwritten: choose another file",
                        output.display()
                    ),
                )
            } else {
                CliError::bad(
                    lang,
                    format!("无法写入 {}:{e}", output.display()),
                    format!("cannot write {}: {e}", output.display()),
                )
            }
        })?;
    writeln!(f, "{}", hex::encode(secret))
        .map_err(|e| CliError::system(format!("cannot write {}: {e}", output.display())))?;
    let public = rectify_engine::chain::public_key_of(&secret);
    if app.json() {
        println!(
            "{}",
            serde_json::json!({ "key_file": output, "public_key": public })
        );
    } else {
        match lang {
            Lang::Zh => println!(
                "签名私钥已写入 {}(仅本人可读,请妥善保管)\n公钥(请公布给核查方):{public}",
                output.display()
            ),
            Lang::En => println!(
                "signing key written to {} (owner-only; keep it safe)\npublic key (publish it to inspectors): {public}",
                output.display()
            ),
        }
    }
    Ok(())
}

/// Reads a signing key file made by `audit keygen`.
fn read_sign_key(lang: Lang, path: &std::path::Path) -> CliResult<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::bad(
            lang,
            format!("无法读取签名密钥 {}:{e}", path.display()),
            format!("cannot read the signing key {}: {e}", path.display()),
        )
    })?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            CliError::bad(
                lang,
                format!(
                    "{} 不是签名密钥(应为 64 位十六进制);请用 `rectify audit keygen -o 文件` 生成",
                    path.display()
                ),
                format!(
                    "{} is not a signing key (64 hex digits expected); make one with `rectify audit keygen -o FILE`",
                    path.display()
                ),
            )
        })
}

async fn audit_export(
    app: &App,
    item: Option<i64>,
    round: Option<String>,
    output: Option<std::path::PathBuf>,
    sign_key: Option<std::path::PathBuf>,
) -> CliResult {
    // The key first: a bad key file must not cost a long export.
    let secret = match &sign_key {
        Some(p) => Some(read_sign_key(app.lang, p)?),
        None => None,
    };
    let store = app.open().await?;
    let actor = app.actor(&store).await?;
    let mut export = store
        .audit_export(item, round.as_deref(), &actor.name, app.now)
        .await
        .lang(app.lang)?;
    if let Some(secret) = &secret {
        export.sign(secret);
    }
    let text = serde_json::to_string_pretty(&export)
        .map_err(|e| CliError::system(format!("cannot write the export: {e}")))?;
    match output {
        Some(path) => {
            std::fs::write(&path, text + "\n").map_err(|e| {
                CliError::bad(
                    app.lang,
                    format!("无法写入 {}:{e}", path.display()),
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
            match app.lang {
                Lang::Zh => eprintln!(
                    "已导出 {} 个事项的记录到 {};封存摘要 {}",
                    export.items.len(),
                    path.display(),
                    export.seal
                ),
                Lang::En => eprintln!(
                    "exported the record of {} item(s) to {}; seal {}",
                    export.items.len(),
                    path.display(),
                    export.seal
                ),
            }
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// Verifies an audit export without any database: the seal and every chain.
fn audit_verify_file(app: &App, file: &std::path::Path, public_key: Option<&str>) -> CliResult {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::bad(
            app.lang,
            format!("无法读取 {}:{e}", file.display()),
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let export: rectify_engine::chain::AuditExport = serde_json::from_str(&text).map_err(|e| {
        CliError::bad(
            app.lang,
            format!("{} 不是 rectify 审计导出文件:{e}", file.display()),
            format!("{} is not a rectify audit export: {e}", file.display()),
        )
    })?;
    let problems = export.verify(app.lang, public_key);
    if problems.is_empty() {
        let events: usize = export.items.iter().map(|i| i.events.len()).sum();
        match app.lang {
            Lang::Zh => println!(
                "导出文件完整:{} 个事项、{events} 条记录,封存摘要 {}",
                export.items.len(),
                export.seal
            ),
            Lang::En => println!(
                "export intact: {} items, {events} events, seal {}",
                export.items.len(),
                export.seal
            ),
        }
        if let Some(sig) = &export.signature {
            match app.lang {
                Lang::Zh => println!("签名有效,公钥 {}", sig.public_key),
                Lang::En => println!("signature valid, public key {}", sig.public_key),
            }
        }
        return Ok(());
    }
    for p in &problems {
        eprintln!("{p}");
    }
    Err(CliError::system(match app.lang {
        Lang::Zh => format!("导出文件未通过核验:{} 处问题(见上)", problems.len()),
        Lang::En => format!(
            "the export does not verify: {} problem(s) above",
            problems.len()
        ),
    }))
}

pub fn calendar_for(app: &App) -> WorkCalendar {
    use rectify_engine::calendar::DayOverride;
    let c = &app.settings.calendar;
    let mut overrides: Vec<DayOverride> = c
        .off
        .iter()
        .map(|d| DayOverride {
            date: *d,
            working: false,
            note: String::new(),
        })
        .collect();
    overrides.extend(c.work.iter().map(|d| DayOverride {
        date: *d,
        working: true,
        note: String::new(),
    }));
    WorkCalendar::china().with_overrides(&overrides, &c.covered_years)
}

fn calendar(app: &App, c: CalendarCmd) -> CliResult {
    let cal = calendar_for(app);
    let zh = app.lang == Lang::Zh;
    match c {
        CalendarCmd::Check => {
            let years = cal.covered_years();
            let this_year = chrono::Datelike::year(&app.today());
            if app.json() {
                println!(
                    "{}",
                    json!({ "covered_years": years, "next_year_covered": cal.covers(this_year + 1) })
                );
            } else {
                let list: Vec<String> = years.iter().map(|y| y.to_string()).collect();
                println!(
                    "{}{}",
                    app.lang.pick("工作日历覆盖的年份:", "calendar covers: "),
                    list.join(", ")
                );
                for y in [this_year, this_year + 1] {
                    if !cal.covers(y) {
                        println!("{}", rectify_engine::calendar::uncovered_warning(y, zh));
                    }
                }
            }
            Ok(())
        }
        CalendarCmd::Show { year } => {
            let listing = cal.year_listing(year);
            if app.json() {
                println!(
                    "{}",
                    json!(
                        listing
                            .days
                            .iter()
                            .map(|d| json!({
                                "date": d.date.format("%Y-%m-%d").to_string(),
                                "working": d.kind.is_working(),
                                "name": d.kind.name(zh),
                            }))
                            .collect::<Vec<_>>()
                    )
                );
            } else {
                if !listing.covered {
                    println!("{}", rectify_engine::calendar::uncovered_warning(year, zh));
                }
                let mut t = output::Table::new(&[
                    app.lang.pick("日期", "Date"),
                    app.lang.pick("星期", "Day"),
                    app.lang.pick("类型", "Kind"),
                    app.lang.pick("名称", "Name"),
                ]);
                for d in &listing.days {
                    t.row(vec![
                        d.date.format("%Y-%m-%d").to_string(),
                        d.date.format("%a").to_string(),
                        if d.kind.is_working() {
                            app.lang.pick("调休上班", "make-up working day")
                        } else {
                            app.lang.pick("放假", "day off")
                        }
                        .to_string(),
                        d.kind.name(zh).unwrap_or("").to_string(),
                    ]);
                }
                print!("{}", t.render());
            }
            Ok(())
        }
    }
}
