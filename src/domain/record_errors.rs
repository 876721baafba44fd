//! The records' own errors: why a finished job's records failed, counted from
//! the `error` objects Bedrock writes into its output files, within a bound.
//!
//! Bedrock writes each failed record to `<output>/<jobId>/<input>.jsonl.out`
//! with an `error` object (`errorCode`, `errorMessage`) in place of
//! `modelOutput`
//! (https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How many reasons a notification, `describe` and the digest show.
pub const TOP_REASONS: usize = 5;
/// Longest normalized message kept for a reason.
pub const MAX_REASON_MESSAGE_CHARS: usize = 200;
/// Distinct reasons counted one by one; past that, failures are counted as
/// "other reasons" so a pathological file cannot grow the tally unbounded.
pub const MAX_DISTINCT_REASONS: usize = 1_000;

/// One reason records failed for, and how many did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReason {
    /// Bedrock's `errorCode`, as text (it comes as a number or a string).
    pub code: String,
    /// Bedrock's `errorMessage`, normalized ([`normalize_message`]); untrusted.
    pub message: String,
    pub count: u64,
}

/// What the output files say of a finished job's failed records, and exactly
/// what was read to say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordErrors {
    /// Failed records counted in what was read.
    pub failed: u64,
    /// The most frequent reasons, most first, at most [`TOP_REASONS`].
    pub top: Vec<ErrorReason>,
    /// How many distinct reasons were counted.
    pub reasons: u64,
    /// `.jsonl.out` files read (wholly or in part), and how many there are.
    pub files_read: u64,
    pub files: u64,
    /// Bytes read, and the bound (`RECORD_ERRORS_MAX_BYTES`).
    pub bytes_read: u64,
    pub max_bytes: u64,
    /// Every file was read whole.
    pub complete: bool,
    /// Lines that were not JSON (a partial last line is dropped, not counted).
    pub malformed_lines: u64,
    /// Why the output could not be read (the counts above are then of what
    /// was read before, usually nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl RecordErrors {
    /// What was read, in words: "in the first 8 MiB of 2 of 3 files" or
    /// "in all 3 files (1.2 MiB)".
    pub fn scope(&self) -> String {
        if self.complete {
            let files = plural(self.files, "file");
            let all = if self.files == 1 { "the" } else { "all" };
            format!("in {all} {files} ({})", bytes(self.bytes_read))
        } else {
            format!(
                "in the first {} of {} of {}",
                bytes(self.max_bytes),
                self.files_read,
                plural(self.files, "file")
            )
        }
    }

    /// The one-line summary: "in the first 8 MiB of 2 of 3 files: 340 failed
    /// records", or why the output could not be read.
    pub fn summary(&self) -> String {
        let mut line = format!("{}: {}", self.scope(), plural(self.failed, "failed record"));
        if self.malformed_lines > 0 {
            line.push_str(&format!(
                " ({} not JSON)",
                plural(self.malformed_lines, "line")
            ));
        }
        match &self.unreadable {
            Some(why) if self.bytes_read == 0 => format!("the output could not be read: {why}"),
            Some(why) => format!("{line}; then the output could not be read: {why}"),
            None => line,
        }
    }

    /// The record errors of an output that could not be read at all.
    pub fn unreadable(why: String, max_bytes: u64) -> Self {
        Self {
            failed: 0,
            top: Vec::new(),
            reasons: 0,
            files_read: 0,
            files: 0,
            bytes_read: 0,
            max_bytes,
            complete: false,
            malformed_lines: 0,
            unreadable: Some(why),
        }
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Bytes as people read them: "512 bytes", "1.2 MiB", "8 MiB".
pub fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    let (unit, size) = match n {
        n if n >= MIB => ("MiB", MIB),
        n if n >= KIB => ("KiB", KIB),
        n => return plural(n, "byte"),
    };
    if n.is_multiple_of(size) {
        format!("{} {unit}", n / size)
    } else {
        format!("{:.1} {unit}", n as f64 / size as f64)
    }
}

/// Counts failed records from the lines of output files, file by file.
#[derive(Debug, Default)]
pub struct Tally {
    counts: HashMap<(String, String), u64>,
    other: u64,
    failed: u64,
    malformed: u64,
}

impl Tally {
    /// Counts the complete lines of `chunk`. `whole` says the chunk is a
    /// whole file: otherwise a last line without its newline is partial and
    /// dropped.
    pub fn add(&mut self, chunk: &[u8], whole: bool) {
        let complete: &[u8] = if whole {
            chunk
        } else {
            match chunk.iter().rposition(|b| *b == b'\n') {
                Some(i) => &chunk[..i],
                None => &[],
            }
        };
        for line in complete.split(|b| *b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(v) => self.add_record(&v),
                Err(_) => self.malformed += 1,
            }
        }
    }

    fn add_record(&mut self, record: &serde_json::Value) {
        let Some(error) = record.get("error").filter(|e| e.is_object()) else {
            return;
        };
        let code = match error.get("errorCode") {
            // 400, 400.0 and "400" are one code.
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                    format!("{}", f as i64)
                }
                _ => n.to_string(),
            },
            Some(serde_json::Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                _ => s.trim().to_owned(),
            },
            _ => "unknown".to_owned(),
        };
        let message = error
            .get("errorMessage")
            .and_then(serde_json::Value::as_str)
            .map(normalize_message)
            .unwrap_or_default();
        self.failed += 1;
        let key = (code, message);
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
        } else if self.counts.len() < MAX_DISTINCT_REASONS {
            self.counts.insert(key, 1);
        } else {
            self.other += 1;
        }
    }

    /// The tally as record errors, with what was read.
    pub fn finish(self, read: ReadScope) -> RecordErrors {
        let reasons = self.counts.len() as u64 + u64::from(self.other > 0);
        let mut top: Vec<ErrorReason> = self
            .counts
            .into_iter()
            .map(|((code, message), count)| ErrorReason {
                code,
                message,
                count,
            })
            .collect();
        // Most first; ties in a stable order, so a repeat says the same.
        top.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.message.cmp(&b.message))
        });
        top.truncate(TOP_REASONS);
        RecordErrors {
            failed: self.failed,
            top,
            reasons,
            files_read: read.files_read,
            files: read.files,
            bytes_read: read.bytes_read,
            max_bytes: read.max_bytes,
            complete: read.complete,
            malformed_lines: self.malformed,
            unreadable: read.unreadable,
        }
    }
}

/// What a reader read, for [`Tally::finish`].
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    pub files_read: u64,
    pub files: u64,
    pub bytes_read: u64,
    pub max_bytes: u64,
    pub complete: bool,
    pub unreadable: Option<String>,
}

/// The longest quoted value a message's normalization takes as one value.
const MAX_QUOTED: usize = 200;

/// A word that varies from record to record: a number (`4096`, `3.5`), an
/// id ending in a number (`rec-99`), or an id with many digits (a UUID,
/// `a1b2c3d4e5`): at least four digits, or digits for at least half of its
/// letters and digits. A
/// name with a digit or two in it (`claude-3-haiku`, `llama3-70b`, `gpt4`)
/// stays, so different models' reasons stay apart.
fn is_variable(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let alnum = word.chars().filter(|c| c.is_alphanumeric()).count();
    let numbered = word
        .rsplit(['-', '_', '.'])
        .next()
        .is_some_and(|last| !last.is_empty() && last.chars().all(|c| c.is_ascii_digit()));
    digits > 0 && (digits == alnum || digits >= 4 || digits * 2 >= alnum || numbered)
}

/// One reason in one form: quoted values become `"…"`, and every word with a
/// digit in it (record ids, UUIDs, numbers, sizes) becomes `<n>`, so that one
/// reason does not split into thousands; whitespace is collapsed and the
/// text cut to [`MAX_REASON_MESSAGE_CHARS`] characters.
pub fn normalize_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_REASON_MESSAGE_CHARS));
    let mut chars = message.chars();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if is_variable(word) {
            out.push_str("<n>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let after_word = previous.is_some_and(char::is_alphanumeric);
        previous = Some(c);
        // An apostrophe inside a word (can't, doesn't) is part of it.
        if c.is_alphanumeric()
            || c == '_'
            || c == '-'
            || (c == '.' && !word.is_empty())
            || (c == '\'' && after_word && chars.clone().next().is_some_and(char::is_alphabetic))
        {
            word.push(c);
            continue;
        }
        // A dot ending a word is punctuation, not part of a number.
        flush(&mut word, &mut out);
        match c {
            '"' | '\'' | '`' if !after_word => {
                // A quoted value, up to its closing quote within
                // MAX_QUOTED characters; a quote that does not close there is
                // kept as a character, and the text goes on.
                let rest = chars.clone();
                match rest.take(MAX_QUOTED).position(|q| q == c) {
                    Some(n) => {
                        chars.nth(n);
                        out.push(c);
                        out.push('…');
                        out.push(c);
                    }
                    None => out.push(c),
                }
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    flush(&mut word, &mut out);
    let out = out.trim_end();
    match out.char_indices().nth(MAX_REASON_MESSAGE_CHARS) {
        Some((i, _)) => format!("{}…", &out[..i]),
        None => out.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_messages_have_contractions_or_model_names_should_keep_their_reasons_apart() {
        let a = normalize_message("Record can't be parsed as JSON");
        let b = normalize_message("Record can't exceed 4096 tokens");
        assert_ne!(a, b);
        assert_eq!(a, "Record can't be parsed as JSON");
        assert_eq!(b, "Record can't exceed <n> tokens");
        assert_ne!(
            normalize_message("model anthropic.claude-3-haiku not supported"),
            normalize_message("model meta.llama3-70b not supported")
        );
        // An unmatched quote does not swallow the rest.
        assert_eq!(normalize_message("bad \"value here"), "bad \"value here");
        assert_eq!(
            normalize_message("id 3f2a9c1e-1b2c-4d5e-8f90-1234567890ab and rec-00017"),
            "id <n> and <n>"
        );
    }

    #[test]
    fn when_a_code_is_400_400_0_or_the_string_400_should_be_one_code() {
        let mut t = Tally::default();
        t.add(
            br#"{"error": {"errorCode": 400, "errorMessage": "x"}}
{"error": {"errorCode": 400.0, "errorMessage": "x"}}
{"error": {"errorCode": "400", "errorMessage": "x"}}
"#,
            true,
        );
        assert_eq!(t.counts.len(), 1, "{:?}", t.counts);
    }

    #[test]
    fn when_messages_differ_by_ids_numbers_and_quoted_values_should_be_one_reason() {
        let a = normalize_message(
            "Record rec-00017 (id 3f2a9c1e-1b2c-4d5e-8f90-1234567890ab) exceeds 4096 tokens for 'claude'.",
        );
        let b = normalize_message(
            "Record rec-99 (id 00000000-0000-4000-8000-000000000000) exceeds 200000 tokens for 'other'.",
        );
        assert_eq!(a, b);
        assert_eq!(a, "Record <n> (id <n>) exceeds <n> tokens for '…'.");
    }

    #[test]
    fn when_a_message_is_long_should_be_cut() {
        let m = normalize_message(&"word ".repeat(200));
        assert_eq!(m.chars().count(), MAX_REASON_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn when_error_codes_come_as_numbers_and_strings_should_count_each_and_drop_a_partial_line() {
        let mut t = Tally::default();
        let lines = concat!(
            r#"{"recordId":"1","modelInput":{},"modelOutput":{}}"#,
            "\n",
            r#"{"recordId":"2","modelInput":{},"error":{"errorCode":400,"errorMessage":"Bad record 2"}}"#,
            "\n",
            r#"{"recordId":"3","modelInput":{},"error":{"errorCode":"400","errorMessage":"Bad record 3"}}"#,
            "\n",
            r#"{"recordId":"4","modelInput":{},"error":{"errorCode":"ThrottlingException","errorMessage":"slow"}}"#,
            "\n",
            r#"{"recordId":"5","modelInput":{},"error":{"errorCode":5"#,
        );
        t.add(lines.as_bytes(), false);
        let e = t.finish(ReadScope::default());
        assert_eq!(e.failed, 3);
        assert_eq!(e.malformed_lines, 0);
        assert_eq!(
            e.top[0],
            ErrorReason {
                code: "400".into(),
                message: "Bad record <n>".into(),
                count: 2
            }
        );
        assert_eq!(e.top[1].code, "ThrottlingException");
    }

    #[test]
    fn when_read_in_part_should_say_exactly_what_was_read() {
        let e = Tally::default().finish(ReadScope {
            files_read: 2,
            files: 3,
            bytes_read: 8 << 20,
            max_bytes: 8 << 20,
            complete: false,
            unreadable: None,
        });
        assert_eq!(
            e.summary(),
            "in the first 8 MiB of 2 of 3 files: 0 failed records"
        );
    }
}
