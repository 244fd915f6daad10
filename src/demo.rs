//! `rectify demo`: a fresh database in a folder of its own, a small round modelled on a real
//! inspection-rectification notice, items walked through different paths, and the item list.

use std::path::PathBuf;

use chrono::Duration;
use rectify_engine::{Actor, Cadence, Command, Deadline, Lang, NewItem, Role, Source};
use rectify_schema::{ConnectSettings, ItemFilter, Operator, Round, Store, Unit};

use crate::app::App;
use crate::error::{CliError, CliResult, InLang};
use crate::output;

const MARKER: &str = ".rectify-demo";

const UNITS: &[(&str, &str, &str)] = &[
    ("FGJ", "区发改局", "王海涛"),
    ("HYJ", "区海洋发展局", "刘建国"),
    ("DJK", "董家口经济区管委", "陈明"),
    ("ZMQ", "自贸片区管委", "赵立新"),
    ("SWJ", "区商务局", "孙晓"),
    ("KJJ", "区科技局", "李娜"),
];

pub async fn run(app: &App, dir: Option<PathBuf>) -> CliResult {
    let lang = app.lang;
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| CliError::system(e.to_string()))?
            .join("rectify-demo"),
    };
    prepare_dir(lang, &dir)?;
    let db_path = dir.join("rectify.db");
    let settings = ConnectSettings::new(
        format!("sqlite://{}", db_path.display()),
        dir.join("evidence"),
    );
    let store = Store::connect(&settings)
        .await
        .lang(lang)?
        .with_planner(crate::remind_cmd::planner(app));
    store.migrate().await.lang(lang)?;

    let today = app.today();
    let start = app.now - Duration::days(60);
    let day = |n: i64| {
        (
            start + Duration::days(n),
            (start + Duration::days(n))
                .with_timezone(&app.tz)
                .date_naive(),
        )
    };
    let (t0, d0) = day(0);

    let office = store
        .add_operator(
            &Operator {
                name: "整改办".into(),
                role: Role::Admin,
                unit: None,
                email: Some("zgb@example.gov.cn".into()),
            },
            t0,
        )
        .await
        .lang(lang)?
        .actor();
    let mut unit_ops: Vec<Actor> = Vec::new();
    for (code, name, leader) in UNITS {
        store
            .add_unit(
                &Unit {
                    code: (*code).into(),
                    name: (*name).into(),
                    parent: None,
                    emails: vec![format!("{}@example.gov.cn", code.to_lowercase())],
                    leader: Some((*leader).into()),
                    leader_email: Some(format!("{}-leader@example.gov.cn", code.to_lowercase())),
                    aliases: vec![],
                },
                t0,
            )
            .await
            .lang(lang)?;
        unit_ops.push(
            store
                .add_operator(
                    &Operator {
                        name: format!("{name}联络员"),
                        role: Role::Unit,
                        unit: Some((*code).into()),
                        email: None,
                    },
                    t0,
                )
                .await
                .lang(lang)?
                .actor(),
        );
    }
    let op = |code: &str| {
        unit_ops
            .iter()
            .find(|a| a.unit.as_deref() == Some(code))
            .cloned()
            .unwrap_or_else(|| office.clone())
    };
    store
        .add_round(
            &Round {
                code: "XS-12-2".into(),
                title: "十二届省委第二轮巡视反馈问题整改".into(),
                source: Source::Inspection,
            },
            t0,
        )
        .await
        .lang(lang)?;

    let add = |parent: Option<i64>,
               number: &str,
               title: &str,
               lead: Option<&str>,
               due: Option<Deadline>| NewItem {
        round: "XS-12-2".into(),
        parent_id: parent,
        number: number.into(),
        title: title.into(),
        lead_unit: lead.map(str::to_string),
        co_units: vec![],
        leader: lead
            .and_then(|l| UNITS.iter().find(|u| u.0 == l))
            .map(|u| u.2.to_string()),
        deadline: due,
    };
    let date = |n: i64| Deadline::Date(d0 + Duration::days(n));

    let cat = store
        .create_item(
            &add(
                None,
                "3",
                "关于对\"三新一高\"发展理念把握不精准问题",
                None,
                None,
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let p1 = store
        .create_item(
            &add(
                Some(cat.id),
                "3.(1)",
                "着力解决推动实施稳经济政策不扎实问题",
                None,
                None,
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let p2 = store
        .create_item(
            &add(
                Some(cat.id),
                "3.(2)",
                "着力解决董家口港贸易港带动作用发挥不够问题",
                None,
                None,
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let p3 = store
        .create_item(
            &add(
                Some(cat.id),
                "3.(3)",
                "着力解决自贸区没有发挥好示范引领作用问题",
                None,
                None,
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m1 = store
        .create_item(
            &add(
                Some(p1.id),
                "3.(1).一",
                "制定海洋经济发展年度工作要点,清单化推进落实",
                Some("HYJ"),
                Some(date(45)),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m2 = store
        .create_item(
            &add(
                Some(p1.id),
                "3.(1).二",
                "持续强化海洋科技创新,推动成果转移转化",
                Some("KJJ"),
                Some(date(50)),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m3 = store
        .create_item(
            &add(
                Some(p2.id),
                "3.(2).一",
                "创新体制机制和业务模式,推动企业本地化结算",
                Some("DJK"),
                Some(date(40)),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m4 = store
        .create_item(
            &add(
                Some(p2.id),
                "3.(2).二",
                "高效服务港航企业,定向招引贸易企业注册结算",
                Some("SWJ"),
                Some(date(70)),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m5 = store
        .create_item(
            &add(
                Some(p3.id),
                "3.(3).一",
                "加速实施自贸试验区提升战略",
                Some("ZMQ"),
                Some(Deadline::LongTerm),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m6 = store
        .create_item(
            &add(
                Some(p3.id),
                "3.(3).二",
                "推动外资项目扩量提质",
                Some("FGJ"),
                Some(date(90)),
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m7 = store
        .create_item(
            &add(Some(p3.id), "3.(3).三", "高标准建设中德生态园", None, None),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;
    let m8 = store
        .create_item(
            &add(
                Some(p3.id),
                "3.(3).四",
                "推动外资项目扩量提质(重复录入)",
                None,
                None,
            ),
            &office,
            t0,
            d0,
        )
        .await
        .lang(lang)?;

    let evidence_file = dir.join("工作要点.txt");
    std::fs::write(&evidence_file, "《工委海洋委2023年工作要点》印发稿")
        .map_err(|e| CliError::system(e.to_string()))?;
    let files = store.store_evidence(&[evidence_file]).lang(lang)?;

    let step = |id: i64, cmd: Command, who: Actor, n: i64| {
        let store = store.clone();
        async move {
            let (t, d) = day(n);
            store.apply(id, &cmd, &who, t, d).await
        }
    };
    // m1: the whole life: acknowledge, report with evidence, submit, sent back, submit, closed.
    step(m1.id, Command::Acknowledge, op("HYJ"), 1)
        .await
        .lang(lang)?;
    step(
        m1.id,
        Command::Progress {
            note: "已制定年度工作要点".into(),
            percent: Some(60),
            evidence: files.clone(),
        },
        op("HYJ"),
        10,
    )
    .await
    .lang(lang)?;
    step(
        m1.id,
        Command::Submit {
            note: "工作要点已印发,清单任务全部启动".into(),
            evidence: vec![],
        },
        op("HYJ"),
        20,
    )
    .await
    .lang(lang)?;
    step(
        m1.id,
        Command::SendBack {
            reason: "缺少清单任务推进情况的佐证".into(),
        },
        office.clone(),
        22,
    )
    .await
    .lang(lang)?;
    step(
        m1.id,
        Command::Submit {
            note: "补充清单推进台账".into(),
            evidence: files.clone(),
        },
        op("HYJ"),
        27,
    )
    .await
    .lang(lang)?;
    step(
        m1.id,
        Command::Close {
            note: Some("验收通过,同意销号".into()),
        },
        office.clone(),
        30,
    )
    .await
    .lang(lang)?;
    // m2: in progress with a report.
    step(m2.id, Command::Acknowledge, op("KJJ"), 2)
        .await
        .lang(lang)?;
    step(
        m2.id,
        Command::Progress {
            note: "新增5个市级重点实验室".into(),
            percent: Some(40),
            evidence: vec![],
        },
        op("KJJ"),
        25,
    )
    .await
    .lang(lang)?;
    // m3: an extension requested before the deadline and approved.
    step(m3.id, Command::Acknowledge, op("DJK"), 3)
        .await
        .lang(lang)?;
    step(
        m3.id,
        Command::RequestExtension {
            to: d0 + Duration::days(100),
            reason: "需与港口集团协商结算方案".into(),
        },
        op("DJK"),
        35,
    )
    .await
    .lang(lang)?;
    step(
        m3.id,
        Command::ApproveExtension {
            note: Some("同意延期".into()),
        },
        office.clone(),
        36,
    )
    .await
    .lang(lang)?;
    // m4: pushed to another unit (转办), not yet acknowledged.
    step(
        m4.id,
        Command::Reassign {
            lead_unit: "FGJ".into(),
            reason: "招商结算职责在发改局".into(),
        },
        office.clone(),
        5,
    )
    .await
    .lang(lang)?;
    // m5: long-term from the start, verified as long-term with a monthly report.
    step(m5.id, Command::Acknowledge, op("ZMQ"), 2)
        .await
        .lang(lang)?;
    step(
        m5.id,
        Command::Submit {
            note: "89项任务全面推进,转入常态化".into(),
            evidence: vec![],
        },
        op("ZMQ"),
        30,
    )
    .await
    .lang(lang)?;
    step(
        m5.id,
        Command::KeepLongTerm {
            note: Some("转为长期坚持,每月报送".into()),
            cadence: Cadence::Monthly,
        },
        office.clone(),
        32,
    )
    .await
    .lang(lang)?;
    // m6 stays assigned and unacknowledged; m7 stays a draft; m8 is merged into m6.
    step(
        m8.id,
        Command::Cancel {
            reason: "与3.(3).二重复".into(),
            merged_into: Some(m6.id),
        },
        office.clone(),
        4,
    )
    .await
    .lang(lang)?;
    let _ = (m6, m7);

    // Reminder passes at a few moments from today on: digests, overdue reminders, escalation
    // and a supervision notice land as .eml files in the demo folder.
    let mail_dir = dir.join("mail");
    let dispatcher = crate::remind_cmd::dispatcher_with(
        app,
        store.clone(),
        &rectify_notifier::TransportConfig::File {
            dir: mail_dir.clone(),
        },
    )?;
    let cal = crate::commands::calendar_for(app);
    let mut pass_day = cal.next_working_day_on_or_after(today);
    let mut passes = Vec::new();
    for step in [0i64, 3, 5, 4] {
        pass_day = cal.add_working_days(pass_day, step);
        let at = pass_day
            .and_hms_opt(9, 30, 0)
            .and_then(|t| t.and_local_timezone(app.tz).single())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(app.now);
        let report = dispatcher.plan_pass(at, false).await.lang(lang)?;
        let sent = dispatcher.deliver(at, "demo").await.lang(lang)?;
        passes.push((pass_day, report.messages.len(), sent.sent));
    }

    let items = store.list_items(&ItemFilter::default()).await.lang(lang)?;
    let overdue = store
        .list_items(&ItemFilter {
            overdue_on: Some(today),
            ..Default::default()
        })
        .await
        .lang(lang)?;
    store.close().await.lang(lang)?;

    let lights = crate::commands::lights_of(app, &items);
    print!("{}", output::items_table(&items, &lights, lang));
    let db = db_path.display();
    match lang {
        Lang::Zh => {
            println!("\n演示数据库:{db}");
            for (day, queued, sent) in &passes {
                println!("{day} 提醒:生成 {queued} 封,发出 {sent} 封");
            }
            println!("邮件(.eml):{}", mail_dir.display());
            println!("逾期事项:{} 项", overdue.len());
            println!(
                "试试:rectify --database sqlite://{db} item history {}",
                m1.id
            );
            println!("      rectify --database sqlite://{db} item list --overdue");
            println!("      rectify --database sqlite://{db} audit verify");
        }
        Lang::En => {
            println!("\ndemo database: {db}");
            for (day, queued, sent) in &passes {
                println!("{day} reminders: {queued} queued, {sent} sent");
            }
            println!("mail (.eml): {}", mail_dir.display());
            println!("overdue items: {}", overdue.len());
            println!(
                "try: rectify --database sqlite://{db} item history {}",
                m1.id
            );
            println!("     rectify --database sqlite://{db} item list --overdue");
            println!("     rectify --database sqlite://{db} audit verify");
        }
    }
    Ok(())
}

/// Makes `dir` an empty demo folder. An earlier demo (marked) is replaced; any other non-empty
/// folder is refused, so the demo never deletes the user's files.
fn prepare_dir(lang: Lang, dir: &std::path::Path) -> CliResult {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false);
        if !empty && !dir.join(MARKER).exists() {
            return Err(CliError::bad(
                lang,
                format!(
                    "文件夹 {} 已存在且不是演示文件夹;请用 --dir 指定一个新文件夹",
                    dir.display()
                ),
                format!(
                    "{} exists and is not a demo folder; choose a new one with --dir",
                    dir.display()
                ),
            ));
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| CliError::system(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::system(format!("{}: {e}", dir.display())))?;
    std::fs::write(
        dir.join(MARKER),
        "rectify demo folder; `rectify demo` may replace it\n",
    )
    .map_err(|e| CliError::system(e.to_string()))?;
    Ok(())
}
