//! What people and programs read: notifications and the digest (every
//! protocol's form), `describe`'s and `list`'s answers.

pub mod describe;
pub mod digest;
pub mod notification;
