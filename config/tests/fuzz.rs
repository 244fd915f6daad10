//! Property-based fuzzing of the config loader: any text is either settings or a clear error;
//! never a panic.

use std::path::Path;

use proptest::prelude::*;
use rectify_config::Settings;

fn toml_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "[reminders]\n",
        "[mail]\n",
        "[schedule]\n",
        "[database]\n",
        "[calendar]\n",
        "[http]\n",
        "before = [\"7wd\", \"3x\"]\n",
        "overdue_every = \"0wd\"\n",
        "send_window = \"18:00-08:30\"\n",
        "send_window = \"25:00-26:00\"\n",
        "remind = \"not cron\"\n",
        "remind = \"0 */5 * * * *\"\n",
        "url = \"mysql://x\"\n",
        "url = \"sqlite://a.db\"\n",
        "pool_size = 0\n",
        "pool_size = 99999999999\n",
        "port = 70000\n",
        "from = \"a\\r\\nBcc: x@y.z\"\n",
        "off = [\"2026-02-30\"]\n",
        "covered_years = [99999]\n",
        "escalate = [{ after = \"3wd\", cc = [\"boss\"] }]\n",
        "lang = \"fr\"\n",
        "time_zone = \"Mars/Olympus\"\n",
        "password = \"x\"\n",
        "listen = \"localhost:1\"\n",
        "= \n",
        "[[x]]\n",
        "\"\n",
        "a.b.c = 1\n",
        "\u{feff}",
        "timeout = \"9999999999999h\"\n",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn config_text_never_panics(text in toml_like()) {
        let _ = Settings::from_toml_str(&text, Path::new("fuzz.toml"));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = Settings::from_toml_str(&text, Path::new("fuzz.toml"));
    }

    #[test]
    fn offsets_parse_or_refuse(text in "\\PC{0,12}") {
        let _ = rectify_engine::Offset::parse(&text);
    }
}
