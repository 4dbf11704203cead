//! The interactive chat's conversation: messages sent so far, who answered each turn, the
//! running token and cost totals, and saving it all as markdown or JSON.

use std::path::Path;

use hero_aibroker_sdk::{ChatCompletionRequest, ChatMessage};
use serde::Serialize;
use serde_json::{Map, Value};

/// What one answer cost and who gave it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Answered {
    pub model: String,
    pub provider: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// USD, when the broker priced it.
    pub cost: Option<f64>,
    pub ttft_ms: Option<u64>,
    pub total_ms: u64,
}

/// One exchange: the user's text and the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub user: String,
    pub assistant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    pub answered: Answered,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
}

#[derive(Debug, Default)]
pub struct Conversation {
    pub model: String,
    pub system: Option<String>,
    pub turns: Vec<Turn>,
    pub totals: Totals,
}

impl Conversation {
    pub fn new(model: String, system: Option<String>) -> Conversation {
        Conversation {
            model,
            system,
            ..Conversation::default()
        }
    }

    /// The conversation as chat messages: system, then each turn's user and assistant.
    pub fn history(&self) -> Vec<ChatMessage> {
        let mut out = Vec::with_capacity(self.turns.len() * 2 + 2);
        if let Some(system) = &self.system {
            out.push(ChatMessage::text("system", system.clone()));
        }
        for t in &self.turns {
            out.push(ChatMessage::text("user", t.user.clone()));
            out.push(ChatMessage::text("assistant", t.assistant.clone()));
        }
        out
    }

    /// The messages to send for a new user message: the history, then `user`.
    pub fn messages(&self, user: &str) -> Vec<ChatMessage> {
        let mut out = self.history();
        out.push(ChatMessage::text("user", user.to_owned()));
        out
    }

    /// The chat request for a new user message, with the optional sampling settings.
    pub fn request(
        &self,
        user: &str,
        temperature: Option<f64>,
        max_tokens: Option<u64>,
    ) -> ChatCompletionRequest {
        let mut extra = Map::new();
        if let Some(t) = temperature {
            extra.insert("temperature".to_owned(), Value::from(t));
        }
        if let Some(n) = max_tokens {
            extra.insert("max_tokens".to_owned(), Value::from(n));
        }
        ChatCompletionRequest {
            model: self.model.clone(),
            messages: self.messages(user),
            stream: None,
            stream_options: None,
            extra,
        }
    }

    pub fn record(&mut self, turn: Turn) {
        let a = &turn.answered;
        self.totals.requests += 1;
        self.totals.prompt_tokens += a.prompt_tokens;
        self.totals.completion_tokens += a.completion_tokens;
        self.totals.cost += a.cost.unwrap_or(0.0);
        self.turns.push(turn);
    }

    /// Forgets the turns and their totals; model and system message stay.
    pub fn clear(&mut self) {
        self.turns.clear();
        self.totals = Totals::default();
    }

    /// Writes the conversation to `path`: JSON when it ends in `.json`, markdown otherwise.
    pub fn save(&self, path: &Path) -> anyhow::Result<&'static str> {
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let (text, kind) = if is_json {
            // `messages` is ready to send back to /v1/chat/completions.
            let doc = serde_json::json!({
                "model": self.model,
                "system": self.system,
                "messages": self.history(),
                "turns": self.turns,
                "totals": self.totals,
            });
            (serde_json::to_string_pretty(&doc)? + "\n", "JSON")
        } else {
            (self.markdown(), "markdown")
        };
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(kind)
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# hero_aibroker chat\n\n");
        if let Some(system) = &self.system {
            md.push_str(&format!("**System:** {system}\n\n"));
        }
        for t in &self.turns {
            md.push_str(&format!("## You\n\n{}\n\n", t.user));
            let a = &t.answered;
            let by = match &a.provider {
                Some(p) => format!("{} via {p}", a.model),
                None => a.model.clone(),
            };
            md.push_str(&format!("## Assistant ({by})\n\n{}\n\n", t.assistant));
        }
        let tot = &self.totals;
        md.push_str(&format!(
            "---\n\n{}, {} tokens in, {} tokens out, ${:.6}\n",
            plural(tot.requests, "request"),
            tot.prompt_tokens,
            tot.completion_tokens,
            tot.cost
        ));
        md
    }
}

/// `1 request`, `2 requests`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(user: &str, cost: f64) -> Turn {
        Turn {
            user: user.into(),
            assistant: format!("re: {user}"),
            reasoning: None,
            answered: Answered {
                model: "m".into(),
                provider: Some("p".into()),
                prompt_tokens: 10,
                completion_tokens: 5,
                cost: Some(cost),
                ttft_ms: Some(3),
                total_ms: 9,
            },
        }
    }

    #[test]
    fn messages_totals_and_clear() {
        let mut c = Conversation::new("auto".into(), Some("be brief".into()));
        c.record(turn("a", 0.5));
        c.record(turn("b", 0.25));
        let roles: Vec<_> = c.messages("c").iter().map(|m| m.role.clone()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(c.totals.requests, 2);
        assert_eq!(c.totals.prompt_tokens, 20);
        assert!((c.totals.cost - 0.75).abs() < 1e-12);
        assert!(c.markdown().contains("## Assistant (m via p)\n\nre: b"));
        c.clear();
        assert_eq!(c.messages("x").len(), 2);
        assert_eq!(c.totals.requests, 0);
    }
}
