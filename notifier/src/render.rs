//! Email text from templates (minijinja): Chinese by default, English with a setting; each email
//! in plain text and HTML. HTML templates escape everything they are given.

use minijinja::Environment;
use rectify_engine::Lang;
use serde_json::Value;

pub struct Renderer {
    env: Environment<'static>,
    pub lang: Lang,
}

impl Renderer {
    pub fn new(lang: Lang) -> Self {
        let mut env = Environment::new();
        // `.html` templates auto-escape; `.txt` do not (plain text has nothing to escape).
        for (name, src) in [
            ("digest.zh.txt", include_str!("../templates/digest.zh.txt")),
            ("digest.en.txt", include_str!("../templates/digest.en.txt")),
            ("digest.html", include_str!("../templates/digest.html")),
            ("notice.zh.txt", include_str!("../templates/notice.zh.txt")),
            ("notice.en.txt", include_str!("../templates/notice.en.txt")),
            ("notice.html", include_str!("../templates/notice.html")),
            ("summary.txt", include_str!("../templates/summary.txt")),
            ("summary.html", include_str!("../templates/summary.html")),
        ] {
            // The templates are compiled into the binary and tested; a broken one is a bug.
            env.add_template(name, src)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        Renderer { env, lang }
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {name}: {e}"))
    }

    fn lang_name(&self, base: &str) -> String {
        format!("{base}.{}.txt", self.lang.as_str())
    }

    /// A reminder digest for one unit: `ctx` has unit, today, items[], sender.
    pub fn digest(&self, ctx: &Value) -> Result<(String, String), String> {
        let l = self.lang;
        let mut html_ctx = ctx.clone();
        html_ctx["lang"] = l.as_str().into();
        html_ctx["intro"] = match l {
            Lang::Zh => format!(
                "截至 {},贵单位牵头的以下 {} 项整改事项需要关注:",
                ctx["today"].as_str().unwrap_or(""),
                ctx["items"].as_array().map_or(0, |a| a.len())
            ),
            Lang::En => format!(
                "As of {}, these {} rectification item(s) led by your unit need attention:",
                ctx["today"].as_str().unwrap_or(""),
                ctx["items"].as_array().map_or(0, |a| a.len())
            ),
        }
        .into();
        html_ctx["outro"] = l
            .pick(
                "请抓紧推进整改,按时报送进展;确需延期的,请在完成时限届满前提出申请。",
                "Please move the work forward and report progress on time; an extension must be requested before the deadline.",
            )
            .into();
        html_ctx["headers"] = serde_json::json!(match l {
            Lang::Zh => [
                "类型",
                "轮次",
                "编号",
                "事项",
                "完成时限",
                "时间",
                "亮灯",
                "最新进展"
            ],
            Lang::En => [
                "Kind",
                "Round",
                "No.",
                "Item",
                "Due",
                "Time",
                "Light",
                "Last progress"
            ],
        });
        Ok((
            self.render(&self.lang_name("digest"), ctx)?,
            self.render("digest.html", &html_ctx)?,
        ))
    }

    /// A supervision notice (督办单) about one item.
    pub fn notice(&self, ctx: &Value) -> Result<(String, String), String> {
        let l = self.lang;
        let text = self.render(&self.lang_name("notice"), ctx)?;
        let s = |k: &str| ctx[k].as_str().unwrap_or("").to_string();
        let mut h = ctx.clone();
        h["lang"] = l.as_str().into();
        h["heading"] = l.pick("督 办 单", "SUPERVISION NOTICE").into();
        h["body"] = match l {
            Lang::Zh => format!(
                "{} {} “{}”,完成时限为 {},截至 {} {},经多次催办仍未完成整改。",
                s("round"), s("number"), s("title"), s("due"), s("today"), s("days")
            ),
            Lang::En => format!(
                "{} {} \"{}\" was due {}; as of {} it is {} and still not done after repeated reminders.",
                s("round"), s("number"), s("title"), s("due"), s("today"), s("days")
            ),
        }
        .into();
        h["leader_label"] = l.pick("责任领导:", "Responsible leader: ").into();
        h["progress_label"] = l.pick("最新进展:", "Last progress: ").into();
        h["history_label"] = l
            .pick("此前已发出的催办:", "Reminders already sent:")
            .into();
        h["demand"] = l
            .pick(
                "请于收到本督办单后立即组织整改,并在 3 个工作日内书面报告整改进展和完成时间。",
                "Please act on this at once and report in writing within 3 working days on progress and the date of completion.",
            )
            .into();
        Ok((text, self.render("notice.html", &h)?))
    }

    /// A summary (daily digest, weekly dispatch, monthly notice): heading, intro, sections[].
    pub fn summary(&self, ctx: &Value) -> Result<(String, String), String> {
        let mut h = ctx.clone();
        h["lang"] = self.lang.as_str().into();
        Ok((
            self.render("summary.txt", ctx)?,
            self.render("summary.html", &h)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_is_escaped_and_both_languages_render() {
        let ctx = json!({
            "unit": "区发改局", "today": "2026-03-02", "sender": "整改办",
            "items": [{"kind": "到期提醒", "round": "R", "number": "1", "title": "<script>alert(1)</script>",
                       "due": "2026-03-31", "days": "剩余 3 个工作日", "light": "黄灯", "color": "orange", "progress": "-"}],
        });
        let (text, html) = Renderer::new(Lang::Zh).digest(&ctx).unwrap();
        assert!(
            text.contains("<script>alert(1)</script>"),
            "plain text keeps the text"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(text.contains("贵单位牵头的以下 1 项"));
        let (text, _) = Renderer::new(Lang::En).digest(&ctx).unwrap();
        assert!(text.contains("these 1 rectification item(s)"));
        let n = json!({"unit": "U", "round": "R", "number": "1", "title": "T", "due": "2026-03-31",
                       "today": "2026-04-20", "days": "已逾期 12 个工作日", "leader": "周诚", "progress": "-",
                       "history": [{"date": "2026-04-02", "kind": "逾期催办"}], "sender": "整改办"});
        let (text, html) = Renderer::new(Lang::Zh).notice(&n).unwrap();
        assert!(text.contains("督 办 单") && text.contains("2026-04-02 逾期催办"));
        assert!(
            text.contains("截至 2026-04-20 已逾期 12 个工作日,"),
            "{text}"
        );
        assert!(html.contains("督 办 单"));
        assert!(!text.contains("已已") && !html.contains("已已"));
    }
}
