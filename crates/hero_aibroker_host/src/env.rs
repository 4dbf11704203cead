//! The one seam through which every hero_aibroker binary reads its environment. Production code takes a
//! snapshot of the process environment at start; tests build one from a map and never call
//! `set_var`.

use std::collections::HashMap;

/// A read-only snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Snapshot of the process environment (non-UTF-8 variables are skipped).
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// This environment with `pairs` added (replacing variables of the same name): how the
    /// broker hands settings it holds elsewhere (a mother's token) to code that reads `Env`.
    pub fn with<K: Into<String>, V: Into<String>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut vars = self.vars.clone();
        vars.extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        Env { vars }
    }

    /// The value of `key`, treating an empty or blank value as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    #[test]
    fn blank_values_count_as_unset() {
        let env = Env::from_pairs([("A", " "), ("B", " x ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.get("C"), None);
    }
}
