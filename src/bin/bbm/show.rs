//! What people read: the jobs as a table, one job's story as a timeline,
//! times as "3h 12m ago" and records as a bar.

use bedrock_batch_monitor::domain::JobStatus;
use bedrock_batch_monitor::warnings::human;
use chrono::{DateTime, Utc};
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde_json::Value;

use crate::jobs::Listed;

/// How to draw: block characters and colours on a terminal, plain ASCII
/// elsewhere (logs, pipes, NO_COLOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub unicode: bool,
    pub color: bool,
}

impl Style {
    pub const PLAIN: Self = Self {
        unicode: false,
        color: false,
    };

    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal();
        Self {
            unicode: tty,
            color: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `3h 12m ago`, from an ISO 8601 time.
pub fn ago(v: &Value, now: DateTime<Utc>) -> String {
    time(v).map_or_else(|| "-".to_owned(), |t| format!("{} ago", human(now - t)))
}

/// `in 2h 10m`: an estimate is in the future or absent (the function says so).
pub fn eta(v: &Value, now: DateTime<Utc>) -> String {
    time(v)
        .filter(|t| *t > now)
        .map_or_else(|| "-".to_owned(), |t| format!("in {}", human(t - now)))
}

fn count(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// `[#####.....] 500/1000` (`█` and `░` on a terminal); the count alone
/// without a total; `-` before Bedrock reports any.
pub fn records(r: &Value, style: Style) -> String {
    let (processed, total) = (count(&r["processed"]), count(&r["total"]));
    match (processed, total) {
        (Some(p), Some(t)) if t > 0 => {
            const WIDTH: i64 = 10;
            let filled = (p.clamp(0, t) * WIDTH / t) as usize;
            let (full, empty) = if style.unicode {
                ("█", "░")
            } else {
                ("#", ".")
            };
            let bar = format!(
                "{}{}",
                full.repeat(filled),
                empty.repeat(WIDTH as usize - filled)
            );
            if style.unicode {
                format!("{bar} {p}/{t}")
            } else {
                format!("[{bar}] {p}/{t}")
            }
        }
        (Some(p), _) => format!("{p} processed"),
        (None, Some(t)) => format!("0/{t}"),
        (None, None) => "-".to_owned(),
    }
}

pub fn labels(v: &Value) -> String {
    let text: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.join(",")
    }
}

/// `$0.34` for an ended job with an estimate, `-` for one without; nothing
/// for a job still running.
pub fn cost(job: &Value) -> String {
    if job.get("endedAt").is_none() && job.get("estimatedCost").is_none() {
        return String::new();
    }
    match job["estimatedCost"]["usd"].as_f64() {
        Some(usd) if usd > 0.0 && usd < 0.01 => "<$0.01".to_owned(),
        Some(usd) => format!("${usd:.2}"),
        None => "-".to_owned(),
    }
}

fn status_color(status: &str) -> Option<Color> {
    match JobStatus::parse(status) {
        JobStatus::Completed => Some(Color::Green),
        JobStatus::Failed | JobStatus::Expired => Some(Color::Red),
        JobStatus::PartiallyCompleted | JobStatus::Stopped | JobStatus::Stopping => {
            Some(Color::Yellow)
        }
        JobStatus::InProgress => Some(Color::Cyan),
        _ => None,
    }
}

fn job_name(job: &Value) -> String {
    job["jobName"].as_str().map_or_else(
        || {
            job["jobArn"]
                .as_str()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?")
                .to_owned()
        },
        str::to_owned,
    )
}

fn account(job: &Value) -> String {
    job["account"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            job["jobArn"]
                .as_str()
                .and_then(|a| a.split(':').nth(4))
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The jobs as a table: name, status, records as a bar, ETA, age, labels and
/// the cost of an ended one; which monitor, and which account, when the rows
/// come from more than one.
pub fn jobs_table(rows: &[Listed], monitors: &[String], now: DateTime<Utc>, style: Style) -> Table {
    let many_monitors = rows.iter().any(|r| r.monitor != rows[0].monitor);
    let accounts: std::collections::BTreeSet<String> =
        rows.iter().map(|r| account(&r.job)).collect();
    let many_accounts = accounts.len() > 1;
    let mut header = Vec::new();
    if many_monitors {
        header.push("MONITOR");
    }
    if many_accounts {
        header.push("ACCOUNT");
    }
    header.extend(["NAME", "STATUS", "RECORDS", "ETA", "AGE", "LABELS"]);
    // What a job cost is known once it ended.
    let any_ended = rows.iter().any(|r| r.job.get("endedAt").is_some());
    if any_ended {
        header.push("COST");
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    if !style.color {
        t.force_no_tty();
    }
    for r in rows {
        let j = &r.job;
        let status = j["status"].as_str().unwrap_or("?");
        let mut cells = Vec::new();
        if many_monitors {
            cells.push(Cell::new(&monitors[r.monitor]));
        }
        if many_accounts {
            cells.push(Cell::new(account(j)));
        }
        let mut status_cell = Cell::new(status);
        if style.color
            && let Some(c) = status_color(status)
        {
            status_cell = status_cell.fg(c);
        }
        cells.extend([
            Cell::new(job_name(j)),
            status_cell,
            Cell::new(records(&j["records"], style)),
            Cell::new(eta(&j["eta"], now)),
            Cell::new(ago(&j["submitTime"], now)),
            Cell::new(labels(&j["labels"])),
        ]);
        if any_ended {
            cells.push(Cell::new(cost(j)));
        }
        t.add_row(cells);
    }
    t
}

/// One line for `wait` and `watch` logs: the job's status, records and ETA.
pub fn progress_line(answer: &Value, now: DateTime<Utc>) -> String {
    let mut s = format!(
        "{} {}",
        job_name(answer),
        answer["status"].as_str().unwrap_or("?")
    );
    let r = &answer["records"];
    if r.is_object() {
        s.push_str(&format!(", records {}", records(r, Style::PLAIN)));
    }
    if let Some(t) = time(&answer["eta"]).filter(|t| *t > now) {
        s.push_str(&format!(
            ", ETA {} ({})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            eta(&answer["eta"], now)
        ));
    }
    s
}

fn field(out: &mut String, key: &str, value: impl AsRef<str>) {
    let value = value.as_ref();
    if !value.is_empty() {
        out.push_str(&format!("{key:<15}{value}\n"));
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// `describe`'s answer as a story: the job, a timeline of its phases with
/// their durations, Bedrock's message, records, cost, and where its
/// notifications stand.
pub fn story(a: &Value, now: DateTime<Utc>, style: Style) -> String {
    let mut out = String::new();
    let status = text(&a["status"]);
    out.push_str(&format!("{}  {status}\n", job_name(a)));
    field(&mut out, "job", text(&a["jobArn"]));
    field(&mut out, "model", text(&a["modelId"]));
    let l = labels(&a["labels"]);
    if l != "-" {
        field(&mut out, "labels", l);
    }
    let tracking = match text(&a["tracking"]) {
        "active" => "active (polled until it ends)".to_owned(),
        "finished" => "finished (ended; kept in the table until it expires)".to_owned(),
        "gone" => "gone: Bedrock no longer knows the job".to_owned(),
        "untracked" => format!(
            "untracked at {}: the monitor ignores it",
            text(&a["untrackedAt"])
        ),
        other => other.to_owned(),
    };
    field(&mut out, "tracking", tracking);
    if let Some(t) = time(&a["submitTime"]) {
        field(
            &mut out,
            "submitted",
            format!("{} ({})", iso(t), ago(&a["submitTime"], now)),
        );
    }
    if let Some(t) = time(&a["endTime"]) {
        let took = time(&a["submitTime"])
            .map_or_else(String::new, |s| format!(" (after {})", human(t - s)));
        field(&mut out, "ended", format!("{}{took}", iso(t)));
    }
    let history: Vec<&Value> = a["history"].as_array().into_iter().flatten().collect();
    if !history.is_empty() {
        out.push_str("\ntimeline\n");
        for (i, h) in history.iter().enumerate() {
            let at = time(&h["at"]);
            let to = text(&h["to"]);
            let took = match (at, history.get(i + 1).and_then(|n| time(&n["at"]))) {
                (Some(a), Some(b)) => human(b - a),
                (Some(a), None) if !JobStatus::parse(to).is_terminal() => {
                    format!("{} so far", human(now - a))
                }
                _ => String::new(),
            };
            let mut line = format!(
                "  {}  {to:<19} {took:<12}",
                at.map_or_else(|| "?".to_owned(), iso)
            );
            if let Some(m) = h["message"].as_str() {
                line.push_str(m);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    field(&mut out, "message", text(&a["message"]));
    let r = &a["records"];
    if r.is_object() {
        let mut s = records(r, style);
        if let (Some(ok), Some(bad)) = (count(&r["success"]), count(&r["error"])) {
            s.push_str(&format!(": {ok} succeeded, {bad} failed"));
            if let Some(p) = count(&r["processed"]).filter(|p| *p > 0) {
                s.push_str(&format!(" ({:.1}%)", bad as f64 * 100.0 / p as f64));
            }
        }
        field(&mut out, "records", s);
    }
    if let Some(t) = time(&a["eta"]).filter(|t| *t > now) {
        field(
            &mut out,
            "eta",
            format!("{} ({})", iso(t), eta(&a["eta"], now)),
        );
    }
    let c = &a["estimatedCost"];
    if let Some(usd) = c["usd"].as_f64() {
        let of = c["pricesOf"]
            .as_str()
            .map_or_else(String::new, |d| format!(" of {d}"));
        field(
            &mut out,
            "cost",
            format!(
                "${usd:.2} ({}): {} input + {} output tokens at batch prices{of} for {}",
                text(&c["basis"]),
                c["inputTokens"],
                c["outputTokens"],
                text(&c["pricedAs"])
            ),
        );
    } else if let Some(note) = a["costNote"].as_str() {
        field(&mut out, "cost", note);
    }
    field(&mut out, "input", text(&a["inputS3Uri"]));
    field(&mut out, "output", text(&a["outputS3Uri"]));
    field(&mut out, "notifications", notifications(a));
    let warned: Vec<&str> = a["warningsSent"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .or_else(|| {
            a["warningsSent"]
                .as_array()
                .map(|l| l.iter().filter_map(Value::as_str).collect())
        })
        .unwrap_or_default();
    if !warned.is_empty() {
        field(&mut out, "warnings sent", warned.join(", "));
    }
    out
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where the job's notifications stand: delivered, pending (to which
/// destination, how many tries, SNS's last error), or set aside.
fn notifications(a: &Value) -> String {
    let pending: Vec<&Value> = a["pending"].as_array().into_iter().flatten().collect();
    let set_aside: Vec<&Value> = a["undeliverable"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if pending.is_empty() && set_aside.is_empty() {
        return if a["history"].as_array().is_some_and(|h| !h.is_empty()) {
            "every one delivered".to_owned()
        } else {
            String::new()
        };
    }
    let mut parts = Vec::new();
    for p in pending {
        let mut where_ = Vec::new();
        for (d, s) in p["destinations"].as_object().into_iter().flatten() {
            if s["delivered"].as_bool() == Some(true) {
                where_.push(format!("{d} delivered"));
            } else {
                let mut w = format!(
                    "{d} pending, {} attempts",
                    s["attempts"].as_u64().unwrap_or(0)
                );
                if let Some(e) = s["lastError"].as_str() {
                    w.push_str(&format!(": {e}"));
                }
                where_.push(w);
            }
        }
        if where_.is_empty() {
            where_.push(format!(
                "pending, {} attempts",
                p["attempts"].as_u64().unwrap_or(0)
            ));
        }
        parts.push(format!("{} ({})", text(&p["status"]), where_.join("; ")));
    }
    for s in set_aside {
        parts.push(format!(
            "{} set aside for {} after {} attempts: {}",
            text(&s["status"]),
            s["destination"].as_str().unwrap_or("topic"),
            s["attempts"].as_u64().unwrap_or(0),
            text(&s["error"])
        ));
    }
    parts.join("\n               ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-27T11:05:00Z".parse().unwrap()
    }

    #[test]
    fn records_should_be_a_bar_with_the_counts() {
        let r = json!({"total": 1000, "processed": 500});
        assert_eq!(records(&r, Style::PLAIN), "[#####.....] 500/1000");
        let tty = Style {
            unicode: true,
            color: false,
        };
        assert_eq!(records(&r, tty), "█████░░░░░ 500/1000");
        assert_eq!(
            records(&json!({"processed": 7}), Style::PLAIN),
            "7 processed"
        );
        assert_eq!(records(&Value::Null, Style::PLAIN), "-");
    }

    #[test]
    fn times_should_read_as_durations() {
        assert_eq!(ago(&json!("2026-11-27T08:00:00Z"), now()), "3h 5m ago");
        assert_eq!(eta(&json!("2026-11-27T13:15:00Z"), now()), "in 2h 10m");
        // An estimate of the past is none.
        assert_eq!(eta(&json!("2026-11-27T10:00:00Z"), now()), "-");
    }

    #[test]
    fn cost_should_show_only_for_ended_jobs() {
        assert_eq!(cost(&json!({"status": "InProgress"})), "");
        assert_eq!(
            cost(&json!({"endedAt": "x", "estimatedCost": {"usd": 0.3425}})),
            "$0.34"
        );
        assert_eq!(cost(&json!({"endedAt": "x", "estimatedCost": null})), "-");
    }

    #[test]
    fn the_table_should_name_the_monitor_only_when_rows_come_from_several() {
        let job = json!({"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
                         "jobName": "nightly", "status": "InProgress",
                         "submitTime": "2026-11-27T08:00:00Z", "labels": {"team": "search"},
                         "records": {"total": 10, "processed": 5}, "eta": "2026-11-27T12:05:00Z"});
        let names = vec!["us".to_owned(), "eu".to_owned()];
        let one = [Listed {
            monitor: 0,
            job: job.clone(),
        }];
        let t = jobs_table(&one, &names, now(), Style::PLAIN).to_string();
        assert!(!t.contains("MONITOR"), "{t}");
        for s in [
            "NAME",
            "nightly",
            "InProgress",
            "[#####.....] 5/10",
            "in 1h 0m",
            "3h 5m ago",
            "team=search",
        ] {
            assert!(t.contains(s), "{s:?} in\n{t}");
        }
        let two = [
            one[0].clone(),
            Listed {
                monitor: 1,
                job: job.clone(),
            },
        ];
        let t = jobs_table(&two, &names, now(), Style::PLAIN).to_string();
        assert!(t.contains("MONITOR") && t.contains("eu"), "{t}");
    }

    #[test]
    fn the_story_should_give_each_phase_its_duration_and_bedrocks_message() {
        let a = json!({
            "jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
            "jobName": "nightly", "status": "Failed", "tracking": "finished",
            "message": "Input file is not valid JSONL at line 3",
            "submitTime": "2026-11-27T08:00:00Z", "endTime": "2026-11-27T10:05:00Z",
            "records": {"total": 1000, "processed": 1000, "success": 988, "error": 12},
            "history": [
                {"from": null, "to": "Submitted", "at": "2026-11-27T08:00:00Z", "message": null},
                {"from": "Submitted", "to": "InProgress", "at": "2026-11-27T08:05:00Z", "message": null},
                {"from": "InProgress", "to": "Failed", "at": "2026-11-27T10:05:00Z", "message": "Input file is not valid JSONL at line 3"}
            ],
            "pending": [{"status": "Failed", "destinations": {"topic": {"delivered": false, "attempts": 2, "lastError": "throttled"}, "slack": {"delivered": true}}}],
            "undeliverable": [],
            "estimatedCost": null, "costNote": "no estimate: no token totals"
        });
        let s = story(&a, now(), Style::PLAIN);
        for want in [
            "nightly  Failed",
            "Submitted           5m",
            "InProgress          2h 0m",
            "Failed",
            "Input file is not valid JSONL at line 3",
            "988 succeeded, 12 failed (1.2%)",
            "after 2h 5m",
            "topic pending, 2 attempts: throttled",
            "slack delivered",
            "no estimate: no token totals",
        ] {
            assert!(s.contains(want), "{want:?} in\n{s}");
        }
    }
}
