//! What people and programs read: notifications (every protocol's form) and
//! `describe`'s answer.

pub mod describe;
pub mod notification;
