//! bedrock-batch-monitor: watches Amazon Bedrock batch inference jobs and
//! notifies an SNS topic when one changes status.

pub mod adapters;
pub mod config;
pub mod custom_resource;
pub mod digest;
pub mod domain;
pub mod event;
pub mod filter_policy;
pub mod handler;
pub mod labels;
pub mod logging;
pub mod monitor;
pub mod ports;
pub mod prices;
pub mod render;
pub mod routes;
pub mod settings_check;
pub mod warnings;
