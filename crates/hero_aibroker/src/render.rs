//! Terminal output for the interactive chat: ANSI styles that switch off for pipes and
//! `NO_COLOR`, and a streaming markdown renderer. Text is printed the moment it arrives; when a
//! line is complete it is redrawn styled (headings, emphasis, inline code, lists, quotes, code
//! blocks), so the answer streams and still ends up rendered.

use std::io::{self, IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

/// ANSI styling, or none at all.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub on: bool,
}

impl Style {
    /// Styled when stdout is a terminal, `NO_COLOR` is unset and `plain` was not asked for.
    pub fn detect(plain: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            on: !plain && !no_color && io::stdout().is_terminal(),
        }
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Starts dim text that [`Style::reset`] ends (for text printed in pieces).
    pub fn start_dim(&self) -> &'static str {
        if self.on { "\x1b[2m" } else { "" }
    }

    pub fn reset(&self) -> &'static str {
        if self.on { "\x1b[0m" } else { "" }
    }

    pub fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }

    pub fn italic(&self, text: &str) -> String {
        self.wrap("3", text)
    }

    pub fn code(&self, text: &str) -> String {
        self.wrap("36", text)
    }

    pub fn heading(&self, text: &str) -> String {
        self.wrap("1;4", text)
    }

    pub fn error(&self, text: &str) -> String {
        self.wrap("31", text)
    }

    pub fn prompt(&self, text: &str) -> String {
        self.wrap("1;32", text)
    }
}

/// Streams an answer to the terminal and restyles every finished line.
pub struct Markdown {
    style: Style,
    /// The current (unfinished) line as received.
    line: String,
    /// Inside a fenced code block.
    in_code: bool,
}

impl Markdown {
    pub fn new(style: Style) -> Markdown {
        Markdown {
            style,
            line: String::new(),
            in_code: false,
        }
    }

    /// Prints `text` as it comes; each completed line is replaced by its styled form.
    pub fn push(&mut self, text: &str, out: &mut impl Write) -> io::Result<()> {
        let mut parts = text.split('\n').peekable();
        while let Some(part) = parts.next() {
            out.write_all(part.as_bytes())?;
            self.line.push_str(part);
            if parts.peek().is_some() {
                self.end_line(out)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }

    /// Styles the last line, if any; the cursor ends at the start of a fresh line.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.line.is_empty() {
            self.end_line(out)?;
            out.write_all(b"\n")?;
        }
        self.in_code = false;
        out.flush()
    }

    fn end_line(&mut self, out: &mut impl Write) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        if !self.style.on {
            return Ok(());
        }
        let styled = render_line(&line, &mut self.in_code, &self.style);
        // Back to where the raw line started (it may have wrapped), clear, redraw.
        let cols = terminal_size::terminal_size()
            .map(|(w, _)| usize::from(w.0))
            .filter(|c| *c > 0)
            .unwrap_or(80);
        let rows = line.width().max(1).div_ceil(cols);
        if rows > 1 {
            write!(out, "\x1b[{}A", rows - 1)?;
        }
        write!(out, "\r\x1b[J{styled}")
    }
}

/// One markdown line styled for the terminal; `in_code` carries fenced-block state.
pub fn render_line(line: &str, in_code: &mut bool, style: &Style) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
        *in_code = !*in_code;
        let lang = trimmed.trim_start_matches(['`', '~']).trim();
        return style.dim(&if *in_code && !lang.is_empty() {
            format!("── {lang} ──")
        } else {
            "────".to_owned()
        });
    }
    if *in_code {
        return style.code(line);
    }
    let indent = &line[..line.len() - trimmed.len()];
    if let Some(level) = heading_level(trimmed) {
        return style.heading(trimmed[level..].trim());
    }
    if matches!(trimmed, "---" | "***" | "___") {
        return style.dim(&"─".repeat(40));
    }
    if let Some(rest) = trimmed.strip_prefix("> ") {
        return format!("{indent}{} {}", style.dim("│"), inline(rest, style));
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = trimmed.strip_prefix(bullet) {
            return format!("{indent}• {}", inline(rest, style));
        }
    }
    format!("{indent}{}", inline(trimmed, style))
}

/// `# Title` → 1 … `###### Title` → 6, or None.
fn heading_level(line: &str) -> Option<usize> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    ((1..=6).contains(&level) && line[level..].starts_with(' ')).then_some(level)
}

/// Inline emphasis: `**bold**`, `__bold__`, `*italic*`, `_italic_`, `` `code` ``. Markers
/// without a closing partner are printed as they are.
pub fn inline(text: &str, style: &Style) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['*', '_', '`']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let marker = if from.starts_with("**") {
            "**"
        } else if from.starts_with("__") {
            "__"
        } else {
            &from[..1]
        };
        let body_start = marker.len();
        let closing = from[body_start..].find(marker).map(|i| i + body_start);
        // `_` inside words (snake_case) is not emphasis.
        let word_underscore =
            marker.starts_with('_') && before.chars().last().is_some_and(char::is_alphanumeric);
        match closing {
            Some(end) if end > body_start && !word_underscore => {
                let body = &from[body_start..end];
                out.push_str(&match marker {
                    "`" => style.code(body),
                    "**" | "__" => style.bold(body),
                    _ => style.italic(body),
                });
                rest = &from[end + marker.len()..];
            }
            _ => {
                out.push_str(marker);
                rest = &from[marker.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Style = Style { on: true };
    const OFF: Style = Style { on: false };

    fn line(s: &str) -> String {
        render_line(s, &mut false, &ON)
    }

    #[test]
    fn inline_emphasis_and_code() {
        assert_eq!(
            inline("a **b** c *d* `e`", &ON),
            "a \x1b[1mb\x1b[0m c \x1b[3md\x1b[0m \x1b[36me\x1b[0m"
        );
        assert_eq!(
            inline("snake_case_name and 2 * 3", &ON),
            "snake_case_name and 2 * 3"
        );
        assert_eq!(inline("**unclosed", &ON), "**unclosed");
        assert_eq!(inline("a **b** c", &OFF), "a b c");
    }

    #[test]
    fn block_elements() {
        assert_eq!(line("## Title"), "\x1b[1;4mTitle\x1b[0m");
        assert_eq!(line("  - item **x**"), "  • item \x1b[1mx\x1b[0m");
        assert_eq!(line("> quoted"), "\x1b[2m│\x1b[0m quoted");
        assert_eq!(line("#hashtag"), "#hashtag");
        let mut in_code = false;
        assert_eq!(
            render_line("```rust", &mut in_code, &ON),
            "\x1b[2m── rust ──\x1b[0m"
        );
        assert!(in_code);
        assert_eq!(
            render_line("let a = **b**;", &mut in_code, &ON),
            "\x1b[36mlet a = **b**;\x1b[0m"
        );
        render_line("```", &mut in_code, &ON);
        assert!(!in_code);
    }

    #[test]
    fn streaming_redraws_each_finished_line() {
        let mut md = Markdown::new(ON);
        let mut out = Vec::new();
        md.push("Hello **wor", &mut out).expect("push");
        md.push("ld**\nnext", &mut out).expect("push");
        md.finish(&mut out).expect("finish");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("Hello **world**\r\x1b[JHello \x1b[1mworld\x1b[0m\n"),
            "{text:?}"
        );
        assert!(text.ends_with("next\r\x1b[Jnext\n"), "{text:?}");
    }

    #[test]
    fn plain_output_is_the_text_itself() {
        let mut md = Markdown::new(OFF);
        let mut out = Vec::new();
        md.push("# A\n- b", &mut out).expect("push");
        md.finish(&mut out).expect("finish");
        assert_eq!(String::from_utf8(out).expect("utf8"), "# A\n- b\n");
    }
}
