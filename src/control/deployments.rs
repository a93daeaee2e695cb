//! Deployments (`ZD`): CONTRACT.md §4.7. Creating one points the Environment at a completed
//! Build of the same Service, atomically with recording the Deployment; re-deploying the Build
//! that is already active is a 409. Rollback is deploying an older Build.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::builds::{BuildData, BuildStatus};
use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::sid::Prefix;
use crate::store::{Kind, Record, Write};

/// The stored fields of a Deployment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentData {
    /// The Service.
    pub service_sid: String,
    /// The Build deployed.
    pub build_sid: String,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

impl ControlPlane {
    fn render_deployment(&self, rec: &Record, d: &DeploymentData) -> Value {
        let env = rec.parent_sid.as_deref().unwrap_or_default();
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": d.service_sid,
            "environment_sid": env,
            "build_sid": d.build_sid,
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&format!(
                "/Services/{}/Environments/{env}/Deployments/{}",
                d.service_sid, rec.sid
            )),
        })
    }

    pub(super) async fn list_deployments(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        self.list_page(
            ctx,
            Kind::Deployment,
            Some(env.sid),
            "deployments",
            ListFilter::default(),
            |r| Ok(self.render_deployment(r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_deployment(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        id: &str,
    ) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        let rec = self
            .load(
                ctx,
                Kind::Deployment,
                Prefix::Deployment,
                id,
                Some(&env.sid),
            )
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_deployment(&rec, &rec.decode()?),
        ))
    }

    pub(super) async fn create_deployment(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        form: &super::Params,
    ) -> ApiResult {
        // [GUESS] The spec does not mark BuildSid required; a Deployment of nothing is refused.
        let raw = form.required("BuildSid", 34)?;
        let build_sid = Prefix::Build.parse(raw).ok_or_else(|| {
            ApiError::bad_param(format!(
                "Invalid value for parameter BuildSid: {raw:?} is not a Build SID (ZB…)"
            ))
        })?;
        form.boolean("IsPlugin")?;

        let (rec, data) = super::retrying(|| self.deploy(ctx, svc, env, &build_sid)).await?;
        Ok(json_response(
            StatusCode::CREATED,
            &self.render_deployment(&rec, &data),
        ))
    }

    /// One attempt at deploying `build_sid` to an Environment: the Deployment is recorded and
    /// the Environment pointed at the Build in one write, which holds only if neither the
    /// Environment nor the Build changed since they were read (so of two racing Deployments
    /// the later-written one is active, and a Build deleted meanwhile is never deployed).
    async fn deploy(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        build_sid: &str,
    ) -> Result<(Record, DeploymentData), ApiError> {
        let (service, mut env_rec, mut env_data) = self.environment(ctx, svc, env).await?;
        let key = build_sid.to_owned();
        let build = self.db(move |s| s.get(&key)).await?;
        let build = match build {
            Some(b)
                if b.kind == Kind::Build
                    && b.account_sid == ctx.account
                    && b.parent_sid.as_deref() == Some(service.sid.as_str()) =>
            {
                b
            }
            _ => {
                return Err(ApiError::bad_param(format!(
                "Invalid value for parameter BuildSid: {build_sid} is not a Build of Service {}",
                service.sid
            )))
            }
        };
        let build_data: BuildData = build.decode()?;
        if build_data.status != BuildStatus::Completed {
            return Err(ApiError::bad_param(format!(
                "Build {build_sid} cannot be deployed: its status is {}, not completed",
                build_data.status.as_str()
            )));
        }
        if env_data.build_sid.as_deref() == Some(build_sid) {
            return Err(ApiError::conflict(format!(
                "Build {build_sid} is already deployed to Environment {}",
                env_rec.sid
            )));
        }
        let created = now();
        let data = DeploymentData {
            service_sid: service.sid.clone(),
            build_sid: build_sid.to_owned(),
            date_updated: created,
        };
        let mut rec = Record::new(
            Kind::Deployment,
            Prefix::Deployment.generate(),
            ctx.account.clone(),
            Some(env_rec.sid.clone()),
            &data,
        );
        rec.created = created;
        env_data.build_sid = Some(build_sid.to_owned());
        env_data.deployment_sid = Some(rec.sid.clone());
        env_data.date_updated = created;
        env_rec.encode(&env_data);
        let writes = vec![
            Write::Insert(rec.clone()),
            Write::Update(env_rec),
            Write::check(&build),
        ];
        self.db(move |s| s.commit(writes)).await?;
        // The edge in this process swaps its route before the POST returns.
        self.changed().await;
        Ok((rec, data))
    }
}
