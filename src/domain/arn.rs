//! Job ARNs and references: validated, with their partition, region and id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a job reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("empty job reference")]
    Empty,
    #[error(
        "{0:?} is not a Bedrock batch inference job ARN \
         (arn:<partition>:bedrock:<region>:<account>:model-invocation-job/<id>) or job id (12 lowercase letters and digits)"
    )]
    Malformed(String),
    #[error(
        "{arn:?} names region {region:?}, which is not a region of the {partition:?} partition \
         (for example us-east-1 in aws, cn-north-1 in aws-cn, us-gov-west-1 in aws-us-gov)"
    )]
    Region {
        arn: String,
        region: String,
        partition: String,
    },
}

/// `arn:<partition>:bedrock:<region>:<account>:model-invocation-job/<id>`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobArn(String);

impl JobArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn part(&self, i: usize) -> &str {
        self.0.split(':').nth(i).unwrap_or_default()
    }
    pub fn partition(&self) -> &str {
        self.part(1)
    }
    pub fn region(&self) -> &str {
        self.part(3)
    }
    pub fn account(&self) -> &str {
        self.part(4)
    }
    pub fn job_id(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

fn is_job_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Region name prefixes of each partition, after the AWS SDK's partition rules
/// (`regionRegex`): `<prefix>-<direction>-<number>`, e.g. `us-east-1`, `us-gov-west-1`.
const PARTITION_REGIONS: [(&str, &[&str]); 8] = [
    (
        "aws",
        &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
    ),
    ("aws-cn", &["cn"]),
    ("aws-us-gov", &["us-gov"]),
    ("aws-iso", &["us-iso"]),
    ("aws-iso-b", &["us-isob"]),
    ("aws-iso-e", &["eu-isoe"]),
    ("aws-iso-f", &["us-isof"]),
    ("aws-eusc", &["eusc-de"]),
];

/// Whether `region` is a well-formed region of `partition`. Only such regions
/// ever get an SDK client: anything else is refused as the job's own error.
pub fn is_region_of(partition: &str, region: &str) -> bool {
    let Some((_, prefixes)) = PARTITION_REGIONS.iter().find(|(p, _)| *p == partition) else {
        return false;
    };
    prefixes.iter().any(|prefix| {
        let Some((direction, number)) = region
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split_once('-'))
        else {
            return false;
        };
        (1..=16).contains(&direction.len())
            && direction.bytes().all(|b| b.is_ascii_lowercase())
            && (1..=2).contains(&number.len())
            && number.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The partition a region belongs to, if it is a well-formed region of one.
pub fn partition_of(region: &str) -> Option<&'static str> {
    PARTITION_REGIONS
        .iter()
        .map(|(p, _)| *p)
        .find(|p| is_region_of(p, region))
}

impl FromStr for JobArn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, ArnError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ArnError::Empty);
        }
        let bad = || ArnError::Malformed(s.to_owned());
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad());
        };
        let id = resource
            .strip_prefix("model-invocation-job/")
            .ok_or_else(bad)?;
        let ok = arn == "arn"
            && partition.starts_with("aws")
            && service == "bedrock"
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && is_job_id(id);
        if !ok {
            return Err(bad());
        }
        if !is_region_of(partition, region) {
            return Err(ArnError::Region {
                arn: s.to_owned(),
                region: region.to_owned(),
                partition: partition.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for JobArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JobArn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JobArn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a caller names a job by: a full ARN, or a bare id in the function's own region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    Arn(JobArn),
    Id { id: String, region: String },
}

impl JobRef {
    pub fn parse(s: &str, default_region: &str) -> Result<Self, ArnError> {
        let t = s.trim();
        if t.starts_with("arn:") {
            return t.parse().map(Self::Arn);
        }
        if t.is_empty() {
            return Err(ArnError::Empty);
        }
        if is_job_id(t) {
            return Ok(Self::Id {
                id: t.to_owned(),
                region: default_region.to_owned(),
            });
        }
        Err(ArnError::Malformed(t.to_owned()))
    }

    pub fn region(&self) -> &str {
        match self {
            Self::Arn(a) => a.region(),
            Self::Id { region, .. } => region,
        }
    }

    /// The account an ARN names; `None` for a bare id (the function's own).
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Arn(a) => Some(a.account()),
            Self::Id { .. } => None,
        }
    }

    /// What GetModelInvocationJob takes as `jobIdentifier`.
    pub fn identifier(&self) -> &str {
        match self {
            Self::Arn(a) => a.as_str(),
            Self::Id { id, .. } => id,
        }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.identifier())
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn when_arn_is_well_formed_should_expose_its_parts() {
        let arn: JobArn = ARN.parse().unwrap();
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.job_id(), "abcdefghwxyz");
        assert_eq!(arn.partition(), "aws");
    }

    #[test]
    fn when_arn_is_malformed_should_refuse_it_and_name_it() {
        for bad in [
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/ABCDEFGHWXYZ",
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/short",
            "arn:aws:s3:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
            "arn:aws:bedrock:us-east-1:12345:model-invocation-job/abcdefghwxyz",
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/abcdefghwxyz",
            "arn:aws:bedrock::123456789012:model-invocation-job/abcdefghwxyz",
            "not an arn",
        ] {
            let err = JobRef::parse(bad, "us-east-1").unwrap_err();
            assert!(err.to_string().contains(bad.trim()), "{err}");
        }
        assert_eq!(JobRef::parse("  ", "us-east-1"), Err(ArnError::Empty));
    }

    #[test]
    fn a_region_should_be_well_formed_for_its_partition() {
        for (partition, region) in [
            ("aws", "us-east-1"),
            ("aws", "ap-southeast-7"),
            ("aws", "il-central-1"),
            ("aws-cn", "cn-northwest-1"),
            ("aws-us-gov", "us-gov-west-1"),
            ("aws-iso-b", "us-isob-east-1"),
            ("aws-eusc", "eusc-de-east-1"),
        ] {
            assert!(is_region_of(partition, region), "{partition} {region}");
            assert_eq!(partition_of(region), Some(partition));
        }
        for (partition, region) in [
            ("aws", "us-gov-west-1"),
            ("aws-cn", "us-east-1"),
            ("aws", "moon-base-1"),
            ("aws", "us-east"),
            ("aws", "us-East-1"),
            ("aws", "us-east-123"),
            ("aws", "us--1"),
            ("aws-xyz", "us-east-1"),
        ] {
            assert!(!is_region_of(partition, region), "{partition} {region}");
        }
        let err = "arn:aws-cn:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"
            .parse::<JobArn>()
            .unwrap_err();
        assert!(matches!(err, ArnError::Region { .. }), "{err}");
    }

    #[test]
    fn when_reference_is_a_bare_id_should_use_the_default_region() {
        let r = JobRef::parse("abcdefghwxyz", "eu-west-3").unwrap();
        assert_eq!(r.region(), "eu-west-3");
        assert_eq!(r.identifier(), "abcdefghwxyz");
    }
}
