//! Finds the unit a document or a ledger names: by code, by name or by one of its aliases.
//!
//! Documents write units the way people say them (`区发改局`), the directory has the full name
//! (`区发展和改革局`) and aliases. A name that matches nothing exactly is tried once more without
//! a leading `区` / `新区` / `市` (so `综合行政执法局` finds `区综合行政执法局`); a name that then
//! matches two units is ambiguous and is not guessed.

use serde::Serialize;

/// One unit as the directory knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitEntry {
    pub code: String,
    pub name: String,
    pub aliases: Vec<String>,
}

/// What a name resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The unit's code.
    Found(String),
    Unknown,
    /// Several units' codes.
    Ambiguous(Vec<String>),
}

#[derive(Clone, Debug, Default)]
pub struct UnitDirectory {
    units: Vec<UnitEntry>,
}

/// Spaces (also full-width) are not part of a unit's name.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{3000}')
        .collect()
}

fn strip_prefix(name: &str) -> &str {
    for p in ["新区", "区", "市"] {
        if let Some(rest) = name.strip_prefix(p)
            && rest.chars().count() >= 2
        {
            return rest;
        }
    }
    name
}

impl UnitDirectory {
    pub fn new(units: Vec<UnitEntry>) -> Self {
        UnitDirectory { units }
    }

    pub fn add(&mut self, unit: UnitEntry) {
        self.units.push(unit);
    }

    pub fn units(&self) -> &[UnitEntry] {
        &self.units
    }

    /// The unit with this code, if any.
    pub fn by_code(&self, code: &str) -> Option<&UnitEntry> {
        self.units.iter().find(|u| u.code == code)
    }

    pub fn resolve(&self, text: &str) -> Resolution {
        let t = normalise(text);
        if t.is_empty() {
            return Resolution::Unknown;
        }
        if let Some(u) = self.units.iter().find(|u| u.code == t) {
            return Resolution::Found(u.code.clone());
        }
        let exact = self.matching(|n| n == t);
        if !exact.is_empty() {
            return one(exact);
        }
        let short = strip_prefix(&t);
        let loose = self.matching(|n| strip_prefix(n) == short);
        if loose.is_empty() {
            Resolution::Unknown
        } else {
            one(loose)
        }
    }

    fn matching(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out: Vec<String> = self
            .units
            .iter()
            .filter(|u| pred(&normalise(&u.name)) || u.aliases.iter().any(|a| pred(&normalise(a))))
            .map(|u| u.code.clone())
            .collect();
        out.dedup();
        out
    }
}

fn one(mut codes: Vec<String>) -> Resolution {
    if codes.len() == 1 {
        Resolution::Found(codes.remove(0))
    } else {
        Resolution::Ambiguous(codes)
    }
}

/// Splits a cell that lists several units: `区城管局、各镇街`, `A,B`, `A;B`, one per line.
pub fn split_units(text: &str) -> Vec<String> {
    text.split(['、', ',', '，', ';', '；', '\n', '/'])
        .map(normalise)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> UnitDirectory {
        UnitDirectory::new(vec![
            UnitEntry {
                code: "fgj".into(),
                name: "区发展和改革局".into(),
                aliases: vec!["区发改局".into(), "发改局".into()],
            },
            UnitEntry {
                code: "zf".into(),
                name: "区综合行政执法局".into(),
                aliases: vec![],
            },
            UnitEntry {
                code: "cg1".into(),
                name: "区城管局".into(),
                aliases: vec![],
            },
            UnitEntry {
                code: "cg2".into(),
                name: "市城管局".into(),
                aliases: vec![],
            },
        ])
    }

    #[test]
    fn code_name_alias_and_loose_prefix() {
        let d = dir();
        assert_eq!(d.resolve("fgj"), Resolution::Found("fgj".into()));
        assert_eq!(d.resolve("区发展和改革局"), Resolution::Found("fgj".into()));
        assert_eq!(d.resolve(" 区发改局 "), Resolution::Found("fgj".into()));
        assert_eq!(d.resolve("综合行政执法局"), Resolution::Found("zf".into()));
        assert_eq!(d.resolve("区城管局"), Resolution::Found("cg1".into()));
        assert_eq!(
            d.resolve("城管局"),
            Resolution::Ambiguous(vec!["cg1".into(), "cg2".into()])
        );
        assert_eq!(d.resolve("区教体局"), Resolution::Unknown);
        assert_eq!(d.resolve(""), Resolution::Unknown);
    }

    #[test]
    fn splitting_lists() {
        assert_eq!(
            split_units("区城管局、 各镇街,区发改局；x\n y"),
            vec!["区城管局", "各镇街", "区发改局", "x", "y"]
        );
    }
}
