//! Environments (`ZE`): CONTRACT.md §4.2. `domain_name` is
//! `{domain_base}[-{domain_suffix}].{domain}`, lower case and unique across the server.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::sid::Prefix;
use crate::store::{Kind, Record, Write};

/// The stored fields of an Environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentData {
    /// Unique within the Service.
    pub unique_name: String,
    /// The suffix of the domain, None for the bare one.
    pub domain_suffix: Option<String>,
    /// The host name the edge serves it at.
    pub domain_name: String,
    /// The Build deployed now, if any.
    pub build_sid: Option<String>,
    /// The Deployment that deployed it (set with it, in the same write; absent in records
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_sid: Option<String>,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

const MAX_UNIQUE_NAME: usize = 100;
const MAX_SUFFIX: usize = 16;

/// A URL-friendly suffix: letters, digits and inner dashes.
fn valid_suffix(s: &str) -> bool {
    s.len() <= MAX_SUFFIX
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The unique key that makes a host name belong to one Environment.
pub fn domain_key(domain_name: &str) -> String {
    format!("domain:{domain_name}")
}

impl ControlPlane {
    /// Resolves a Service and one of its Environments.
    pub(super) async fn environment(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
    ) -> Result<(Record, Record, EnvironmentData), ApiError> {
        let (service, _) = self.service(ctx, svc).await?;
        let rec = self
            .load(
                ctx,
                Kind::Environment,
                Prefix::Environment,
                env,
                Some(&service.sid),
            )
            .await?;
        let data = rec.decode()?;
        Ok((service, rec, data))
    }

    /// Rewrites an Environment's record as it is, so every edge — which follows Environments
    /// on the change feed — reads it and what hangs off it (its Variables) again. Its own
    /// write, retried when another one changed the record meanwhile, so racing Variable
    /// writes never contend on it; a failure is logged (the Variable is written whatever
    /// happens here, and edges read it at the Environment's next change).
    pub(super) async fn touch_environment(&self, env_sid: &str) {
        let touched = super::retrying(|| async move {
            let sid = env_sid.to_owned();
            let Some(rec) = self.db(move |s| s.get(&sid)).await? else {
                return Ok(()); // deleted meanwhile: edges drop it anyway
            };
            self.db(move |s| s.commit(vec![Write::Update(rec)])).await
        })
        .await;
        if let Err(e) = touched {
            tracing::warn!(environment = %env_sid, error = %e.message, "edges will read this Environment's Variables at its next change");
        }
    }

    pub(super) fn environment_path(rec: &Record) -> String {
        format!(
            "/Services/{}/Environments/{}",
            rec.parent_sid.as_deref().unwrap_or_default(),
            rec.sid
        )
    }

    fn render_environment(&self, rec: &Record, d: &EnvironmentData) -> Value {
        let path = Self::environment_path(rec);
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": rec.parent_sid,
            "build_sid": d.build_sid,
            "unique_name": d.unique_name,
            "domain_suffix": d.domain_suffix,
            "domain_name": d.domain_name,
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&path),
            "links": {
                "variables": self.url(&format!("{path}/Variables")),
                "deployments": self.url(&format!("{path}/Deployments")),
                "logs": self.url(&format!("{path}/Logs")),
            }
        })
    }

    pub(super) async fn list_environments(&self, ctx: &Ctx, svc: &str) -> ApiResult {
        let (service, _) = self.service(ctx, svc).await?;
        self.list_page(
            ctx,
            Kind::Environment,
            Some(service.sid),
            "environments",
            ListFilter::default(),
            |r| Ok(self.render_environment(r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_environment(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        let (_, rec, data) = self.environment(ctx, svc, env).await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_environment(&rec, &data),
        ))
    }

    pub(super) async fn create_environment(
        &self,
        ctx: &Ctx,
        svc: &str,
        form: &super::Params,
    ) -> ApiResult {
        let unique_name = form.required("UniqueName", MAX_UNIQUE_NAME)?;
        let suffix = match form.get("DomainSuffix") {
            None | Some("") => None,
            Some(s) if valid_suffix(s) => Some(s.to_owned()),
            Some(s) => {
                return Err(ApiError::bad_param(format!(
                    "Invalid value for parameter DomainSuffix: {s:?} must be at most {MAX_SUFFIX} letters, digits and dashes (not at either end)"
                )))
            }
        };
        let suffix = &suffix;
        // Retried when the Service changed or went meanwhile: the store refuses an
        // Environment under a Service that is gone.
        super::retrying(|| async move {
            let (service, sdata) = self.service(ctx, svc).await?;
            let domain_name = match suffix {
                Some(s) => format!("{}-{}.{}", sdata.domain_base, s, self.domain),
                None => format!("{}.{}", sdata.domain_base, self.domain),
            }
            .to_ascii_lowercase();
            let created = now();
            let data = EnvironmentData {
                unique_name: unique_name.to_owned(),
                domain_suffix: suffix.clone(),
                domain_name: domain_name.clone(),
                build_sid: None,
                deployment_sid: None,
                date_updated: created,
            };
            let mut rec = Record::new(
                Kind::Environment,
                Prefix::Environment.generate(),
                ctx.account.clone(),
                Some(service.sid.clone()),
                &data,
            );
            rec.created = created;
            rec.unique = vec![
                format!("environment:{}:{unique_name}", service.sid),
                domain_key(&domain_name),
            ];
            match self.commit(vec![Write::Insert(rec.clone())]).await? {
                Ok(()) => Ok(json_response(
                    StatusCode::CREATED,
                    &self.render_environment(&rec, &data),
                )),
                Err(_) => Err(ApiError::conflict(
                    "Environment with this UniqueName or DomainSuffix already exists.",
                )),
            }
        })
        .await
    }

    pub(super) async fn delete_environment(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        super::retrying(|| async move {
            let (_, rec, _) = self.environment(ctx, svc, env).await?;
            let sid = rec.sid.clone();
            self.db(move |s| s.commit(vec![Write::Delete(sid)])).await?;
            self.changed().await;
            Ok(super::no_content())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::valid_suffix;

    #[test]
    fn suffixes() {
        for ok in ["dev", "stage-2", "A1", &"a".repeat(16)] {
            assert!(valid_suffix(ok), "{ok}");
        }
        for bad in ["-dev", "dev-", "de v", "dev.x", "dév", &"a".repeat(17)] {
            assert!(!valid_suffix(bad), "{bad}");
        }
    }
}
