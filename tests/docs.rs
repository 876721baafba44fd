//! The README and the pages under docs/ hold together: every link between
//! them resolves (the file exists, the heading it points at exists), every
//! page is linked from the README, and the README stays a front door.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// The lines outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case; letters, digits, spaces,
/// hyphens and underscores kept; spaces become hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    prose(&text)
        .into_iter()
        .filter_map(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            (hashes > 0 && l[hashes..].starts_with(' ')).then(|| slug(&l[hashes..]))
        })
        .collect()
}

/// Every `[text](target)` in the prose (inline code spans left out).
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        // Drop inline code: a link inside backticks is an example, not a link.
        let mut plain = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                plain.push(c);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_link_between_the_readme_and_the_docs_should_resolve() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (file, anchor) = match link.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if let Some(a) = anchor
                && !anchors(&target).contains(a)
            {
                broken.push(format!("{}: {link} (no such heading)", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links found: is the parser blind?"
    );
}

#[test]
fn the_link_checker_should_see_a_broken_link() {
    // The checker above is only as good as its parts: a heading's anchor and
    // a link are read as GitHub reads them.
    assert_eq!(
        slug(" Capacity: jobs per invocation, and when to add schedules"),
        "capacity-jobs-per-invocation-and-when-to-add-schedules"
    );
    assert_eq!(slug(" `ErrorsAlarm`"), "errorsalarm");
    assert_eq!(
        slug(" Bedrock's quota and bulk reads"),
        "bedrocks-quota-and-bulk-reads"
    );
    assert_eq!(
        links("see [a](docs/x.md#y) and `[not](a link)`\n```\n[nor](this)\n```\n[b](#c)"),
        ["docs/x.md#y", "#c"]
    );
}

#[test]
fn every_docs_page_should_be_linked_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> = links(&readme)
        .into_iter()
        .map(|l| l.split('#').next().unwrap().to_owned())
        .collect();
    for page in pages().into_iter().skip(1) {
        let name = format!("docs/{}", page.file_name().unwrap().to_str().unwrap());
        assert!(linked.contains(&name), "the README does not link {name}");
    }
}

#[test]
fn the_readme_should_stay_a_front_door() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 260,
        "README.md has {lines} lines: move the reference to docs/"
    );
    for must in ["make demo", "make test", "sam deploy", "## Deploy"] {
        assert!(readme.contains(must), "the README lacks {must:?}");
    }
}

/// Every `aws lambda invoke` in the README and docs/ names the function by the
/// stack's `FunctionName` output (`"$FUNCTION"`), never by a name that only
/// one stack has.
#[test]
fn invoke_examples_should_name_the_function_by_the_stacks_output() {
    let mut examples = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for line in text.lines().filter(|l| l.contains("--function-name")) {
            examples += 1;
            assert!(
                line.contains("--function-name \"$FUNCTION\""),
                "{}: {line}",
                page.display()
            );
        }
        if text.contains("\"$FUNCTION\"") && page.ends_with("README.md") {
            assert!(
                text.contains("OutputKey=='FunctionName'"),
                "README: say where $FUNCTION comes from"
            );
        }
    }
    assert!(examples >= 3, "{examples}");
}

/// "Which price" says how a job run through an application inference profile
/// is priced, with a `PRICES` example: the example prices such a job under
/// its ARN, and without it nothing does (not even a guess at the model
/// behind it); a provisioned model gets no figure at all.
#[test]
fn the_inference_profile_and_provisioned_model_pricing_should_do_what_the_page_says() {
    use bedrock_batch_monitor::domain::TokenTotals;
    use bedrock_batch_monitor::prices::{Costing, PriceBook};

    let page = std::fs::read_to_string(root().join("docs/notifications.md")).unwrap();
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in page.lines() {
        match (&mut block, line.trim_start().starts_with("```")) {
            (None, true) => block = Some(String::new()),
            (Some(b), true) => {
                blocks.push(std::mem::take(b));
                block = None;
            }
            (Some(b), false) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, false) => {}
        }
    }
    let example = blocks
        .iter()
        .find(|b| b.contains(":application-inference-profile/"))
        .expect("a PRICES example for an application inference profile");
    let v: serde_json::Value = serde_json::from_str(example).expect("the example is JSON");
    let arn = v.as_object().unwrap().keys().next().unwrap().clone();
    let region = arn.split(':').nth(3).unwrap().to_owned();
    let tokens = TokenTotals {
        input: 1_000_000,
        output: 1_000_000,
    };

    // With the example as PRICES, the job is priced under its ARN.
    let book = PriceBook::with_overrides(example).expect("the example is a valid PRICES");
    match book.costing_of(Some(&arn), &region, tokens) {
        Costing::Estimated(e) => {
            assert_eq!(e.priced_as, arn);
            assert_eq!(e.cents, 75, "$0.125 + $0.625 for a million of each");
        }
        other => panic!("the example does not price {arn}: {other:?}"),
    }
    // Without it, no price: the table names no application profile.
    assert!(
        matches!(
            PriceBook::built_in().costing_of(Some(&arn), &region, tokens),
            Costing::NoPrice { .. }
        ),
        "{arn} priced without PRICES"
    );
    // A provisioned model gets no figure from the table.
    let provisioned =
        format!("arn:aws:bedrock:{region}:123456789012:provisioned-model/abc123def456");
    assert!(matches!(
        PriceBook::built_in().costing_of(Some(&provisioned), &region, tokens),
        Costing::NoPrice { .. }
    ));
    assert!(page.contains("**Provisioned models** (`...:provisioned-model/<id>`)"));
}
