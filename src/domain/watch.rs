//! Which jobs a monitor watches (`WATCH`), and the decision on one job
//! about to be tracked: one rule for Bedrock's events, discovery and `track`.

use std::collections::BTreeMap;

/// Which jobs this monitor watches (`WATCH`): the one rule for Bedrock's
/// events, discovery and `track`. Empty: every job of the account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watch {
    pub terms: Vec<WatchTerm>,
    /// No job at all: what a `WATCH` the function cannot read stands for.
    nothing: bool,
}

/// One term of `WATCH`; a job matching any term is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTerm {
    /// `name:<prefix>`: the job's name starts with it.
    NamePrefix(String),
    /// `tag:<key>=<value>`: the job carries this tag.
    Tag(String, String),
}

impl Watch {
    /// Watches no job: taken for a `WATCH` the function cannot read.
    pub fn nothing() -> Self {
        Self {
            terms: Vec::new(),
            nothing: true,
        }
    }

    pub fn is_all(&self) -> bool {
        self.terms.is_empty() && !self.nothing
    }

    /// Whether deciding may need the job's tags (a `tag:` term).
    pub fn has_tag_terms(&self) -> bool {
        self.terms.iter().any(|t| matches!(t, WatchTerm::Tag(..)))
    }

    /// Whether a job of this name is watched on its name alone.
    pub fn by_name(&self, job_name: Option<&str>) -> bool {
        self.is_all()
            || self.terms.iter().any(|t| match t {
                WatchTerm::NamePrefix(p) => job_name.is_some_and(|n| n.starts_with(p.as_str())),
                WatchTerm::Tag(..) => false,
            })
    }

    /// Whether a job of this name and these tags is watched.
    pub fn admits(&self, job_name: Option<&str>, tags: &BTreeMap<String, String>) -> bool {
        self.by_name(job_name)
            || self.terms.iter().any(|t| match t {
                WatchTerm::Tag(k, v) => tags.get(k) == Some(v),
                WatchTerm::NamePrefix(_) => false,
            })
    }

    /// `WATCH` written back, for messages.
    pub fn text(&self) -> String {
        if self.nothing {
            return "none, the value set being unusable (see settingWarnings)".to_owned();
        }
        if self.is_all() {
            return "all".to_owned();
        }
        self.terms
            .iter()
            .map(|t| match t {
                WatchTerm::NamePrefix(p) => format!("name:{p}"),
                WatchTerm::Tag(k, v) => format!("tag:{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `WATCH` as written: `all`, or comma-separated `name:<prefix>` and
    /// `tag:<key>=<value>` terms.
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("all") {
            return Some(Self::default());
        }
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let parsed = if let Some(prefix) = term.strip_prefix("name:") {
                (!prefix.is_empty() && prefix.len() <= 63)
                    .then(|| WatchTerm::NamePrefix(prefix.to_owned()))
            } else if let Some(tag) = term.strip_prefix("tag:") {
                tag.split_once('=')
                    .filter(|(k, v)| !k.is_empty() && k.len() <= 128 && v.len() <= 256)
                    .map(|(k, v)| WatchTerm::Tag(k.to_owned(), v.to_owned()))
            } else {
                None
            };
            terms.push(parsed?);
        }
        (!terms.is_empty()).then_some(Self {
            terms,
            nothing: false,
        })
    }
}

/// What `WATCH` says of a job about to be tracked: the decision Bedrock's
/// events, discovery and `track` share. `E` is why the tags could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<E> {
    /// Watched: track it, with these labels from its tags.
    Watched(BTreeMap<String, String>),
    /// Not one of this monitor's jobs.
    NotWatched,
    /// Its tags decide (whether it is watched, or its labels), and they
    /// could not be read: never taken as a "no", nor as "no labels".
    Undecided(E),
    /// Watched by its name; the tags that give its labels could not be read
    /// for a reason that trying again does not mend (access denied): it is
    /// tracked without labels, and that is said, never silent.
    Unlabelled(E),
}

impl Watch {
    /// Whether a job named `job_name` needs its tags read to be admitted:
    /// for a `tag:` term that its name does not settle, or for labels.
    pub fn needs_tags(&self, job_name: Option<&str>, want_labels: bool) -> bool {
        let by_name = self.by_name(job_name);
        (!by_name && self.has_tag_terms()) || (by_name && want_labels)
    }

    /// The decision, from the job's name and, when they were needed
    /// ([`needs_tags`](Self::needs_tags)), its tags as read; `labels` turns
    /// tags into labels.
    pub fn admission<E>(
        &self,
        job_name: Option<&str>,
        tags: Option<Result<BTreeMap<String, String>, E>>,
        labels: impl FnOnce(&BTreeMap<String, String>) -> BTreeMap<String, String>,
    ) -> Admission<E> {
        match tags {
            None if self.by_name(job_name) => Admission::Watched(BTreeMap::new()),
            None => Admission::NotWatched,
            Some(Err(e)) => Admission::Undecided(e),
            Some(Ok(tags)) if self.admits(job_name, &tags) => Admission::Watched(labels(&tags)),
            Some(Ok(_)) => Admission::NotWatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_tag_read_is_never_a_no() {
        let watch = Watch::parse("tag:team=search").unwrap();
        assert!(watch.needs_tags(Some("nightly"), false));
        let got = watch.admission(Some("nightly"), Some(Err("throttled")), |_| BTreeMap::new());
        assert_eq!(got, Admission::Undecided("throttled"));
        let tags = BTreeMap::from([("team".to_owned(), "ads".to_owned())]);
        let got: Admission<()> =
            watch.admission(Some("nightly"), Some(Ok(tags)), |_| BTreeMap::new());
        assert_eq!(got, Admission::NotWatched);
        let by_name = Watch::parse("name:nightly").unwrap();
        assert!(!by_name.needs_tags(Some("nightly-1"), false));
        assert!(
            !by_name.needs_tags(Some("other"), false),
            "a name term alone never needs tags"
        );
    }
}
