//! One small builder of `UpdateItem` expressions: every attribute name and
//! value goes through a placeholder it hands out (`#aN`, `:vN`), so no write
//! spells its own, and the version condition every job write carries.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{VERSION, n};
use super::{DynamoJobStore, write_result};
use crate::domain::JobArn;
use crate::ports::{StoreError, Write};

/// Builds expression attribute names `#a0, #a1, ...` for the names used.
#[derive(Default)]
pub(super) struct Names(Vec<String>);

impl Names {
    pub(super) fn of(&mut self, name: &str) -> String {
        let i = self.0.iter().position(|n| n == name).unwrap_or_else(|| {
            self.0.push(name.to_owned());
            self.0.len() - 1
        });
        format!("#a{i}")
    }
    pub(super) fn into_map(self) -> HashMap<String, String> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(i, n)| (format!("#a{i}"), n))
            .collect()
    }
}

/// An `UpdateItem` expression built a clause at a time.
#[derive(Default)]
pub(super) struct Update {
    names: Names,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    remove: Vec<String>,
    /// `ADD` clauses (adding to a set).
    add: Vec<String>,
}

impl Update {
    /// The placeholder of an attribute name (or of one step of a path).
    pub(super) fn name(&mut self, name: &str) -> String {
        self.names.of(name)
    }
    /// A placeholder for a value of its own.
    pub(super) fn value(&mut self, v: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }
    /// `path = v`, `path` being an attribute or a map's entry (`["outbox", id]`).
    pub(super) fn set(&mut self, path: &[&str], v: AttributeValue) {
        let lhs = self.path(path);
        let rhs = self.value(v);
        self.set.push(format!("{lhs} = {rhs}"));
    }
    pub(super) fn remove(&mut self, attr: &str) {
        let n = self.name(attr);
        self.remove.push(n);
    }
    /// Appends `entries` to the list `attr`, creating it when absent.
    pub(super) fn append(&mut self, attr: &str, entries: Vec<AttributeValue>) {
        let a = self.name(attr);
        let empty = self.value(AttributeValue::L(vec![]));
        let more = self.value(AttributeValue::L(entries));
        self.set.push(format!(
            "{a} = list_append(if_not_exists({a}, {empty}), {more})"
        ));
    }
    /// Adds `v` (a set) to the set `attr`.
    pub(super) fn add_to_set(&mut self, attr: &str, v: AttributeValue) {
        let a = self.name(attr);
        let v = self.value(v);
        self.add.push(format!("{a} {v}"));
    }
    /// Removes `path` (an attribute or a map's entry).
    pub(super) fn remove_path(&mut self, path: &[&str]) {
        let p = self.path(path);
        self.remove.push(p);
    }
    /// `path = if_not_exists(path, 0) + 1`.
    pub(super) fn increment(&mut self, path: &[&str]) {
        let p = self.path(path);
        let zero = self.value(n(0));
        let one = self.value(n(1));
        self.set
            .push(format!("{p} = if_not_exists({p}, {zero}) + {one}"));
    }
    /// Adds `v` (a set) to the set at `path`.
    pub(super) fn add_to_set_at(&mut self, path: &[&str], v: AttributeValue) {
        let p = self.path(path);
        let v = self.value(v);
        self.add.push(format!("{p} {v}"));
    }
    /// The placeholder form of `path`, for a condition.
    pub(super) fn path(&mut self, path: &[&str]) -> String {
        let steps: Vec<String> = path.iter().map(|p| self.name(p)).collect();
        steps.join(".")
    }
    /// The expression, its names and its values, for a request built elsewhere.
    pub(super) fn into_parts(
        self,
    ) -> (
        String,
        HashMap<String, String>,
        HashMap<String, AttributeValue>,
    ) {
        (self.expression(), self.names.into_map(), self.values)
    }
    fn expression(&self) -> String {
        let mut clauses = Vec::new();
        if !self.set.is_empty() {
            clauses.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            clauses.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            clauses.push(format!("ADD {}", self.add.join(", ")));
        }
        clauses.join(" ")
    }
}

impl DynamoJobStore {
    /// Sends `u` on the condition that the stored version is `expected_version`.
    pub(super) async fn update_on_version(
        &self,
        key: &JobArn,
        mut u: Update,
        expected_version: u64,
    ) -> Result<Write, StoreError> {
        let version = u.name(VERSION);
        let expected = u.value(n(expected_version));
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(u.expression())
            .condition_expression(format!("{version} = {expected}"))
            .set_expression_attribute_names(Some(u.names.into_map()))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        write_result(r, &self.table)
    }
}
