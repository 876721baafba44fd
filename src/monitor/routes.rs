//! Routes as CloudFormation declares them (`Custom::NotificationRoute`),
//! and `{"routes": {}}`.

use chrono::Utc;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::{Monitor, MonitorError};
use crate::custom_resource::{Outcome, Request, RequestType};
use crate::ports::{RouteStore, Write};
use crate::routes;

impl<S, T: RouteStore, N> Monitor<S, T, N> {
    /// Create and Update: the route is checked, then stored (unless another
    /// stack declared its name), and answered with its physical id. Delete:
    /// the route is removed if this very resource holds it; one another
    /// stack declared, or this stack's resource under a new logical id, stays,
    /// and the Delete still succeeds (a rollback of a refused Create must not
    /// take another team's route).
    pub(super) async fn provide_route(&self, request: &Request) -> Outcome {
        if request.request_type == RequestType::Delete {
            return self.delete_route(request).await;
        }
        // A refused Create gets an id of its own: CloudFormation's rollback
        // then deletes nothing that was stored under the name.
        let refused = |reason: String| Outcome::Refused {
            physical_id: request
                .physical_resource_id
                .clone()
                .unwrap_or_else(|| format!("refused-{}", request.request_id)),
            reason,
        };
        let route = match routes::declare(request, &self.home_region, Utc::now()) {
            Ok(route) => route,
            Err(e) => return refused(e.0),
        };
        match self.store.put_route(&route).await {
            Ok(Write::Done) => {
                info!(route = %route.name, topic = %route.topic_arn, stack = %request.stack_id, "route stored");
                let mut data = Map::new();
                data.insert("Name".to_owned(), json!(route.name));
                Outcome::Done {
                    physical_id: routes::physical_id(&route.name),
                    data,
                }
            }
            Ok(Write::Lost) => {
                let holder = self
                    .store
                    .routes()
                    .await
                    .ok()
                    .and_then(|book| book.declared.into_iter().find(|r| r.name == route.name))
                    .and_then(|r| match r.source {
                        routes::Source::Stack { stack_id, .. } => Some(stack_id),
                        routes::Source::Setting => None,
                    })
                    .unwrap_or_else(|| "another stack".to_owned());
                refused(format!(
                    "a route named {:?} is declared by {holder}; give this one another Name",
                    route.name
                ))
            }
            Err(e) => refused(format!(
                "the route could not be stored in the job table ({}): {e}; try the deploy again",
                e.kind()
            )),
        }
    }

    async fn delete_route(&self, request: &Request) -> Outcome {
        let physical_id = request
            .physical_resource_id
            .clone()
            .unwrap_or_else(|| request.logical_resource_id.clone());
        let done = Outcome::Done {
            physical_id: physical_id.clone(),
            data: Map::new(),
        };
        // An id this function never gave a stored route (a refused Create's)
        // has nothing to remove.
        let Some(name) = routes::name_of_physical_id(&physical_id).map(str::to_owned) else {
            return done;
        };
        let name = name.as_str();
        match self
            .store
            .delete_route(name, &request.stack_id, &request.logical_resource_id)
            .await
        {
            Ok(Write::Done) => {
                info!(route = name, stack = %request.stack_id, "route deleted");
                done
            }
            Ok(Write::Lost) => {
                warn!(route = name, stack = %request.stack_id, logical_resource_id = %request.logical_resource_id, "a route of that name is held by another resource (another stack's, or this stack's under a new logical id); left as it is");
                done
            }
            Err(e) => Outcome::Refused {
                physical_id,
                reason: format!(
                    "the route {name:?} could not be removed from the job table ({}): {e}; delete the stack again",
                    e.kind()
                ),
            },
        }
    }

    /// `{"routes": {}}`: every route (the stack's Slack channel first, then
    /// the teams' by name) with its policy, topic, who declared it, and how
    /// its deliveries went.
    pub(super) async fn list_routes(&self) -> Result<Value, MonitorError> {
        let book = self.store.routes().await?;
        let table = routes::Table::new(self.config.slack.as_ref(), book.declared);
        let listed: Vec<Value> = table
            .all()
            .iter()
            .map(|r| routes::listed(r, book.stats.get(&r.name)))
            .collect();
        Ok(json!({"routes": listed}))
    }
}
