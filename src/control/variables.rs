//! Variables (`ZV`): CONTRACT.md §4.8. `Key` is unique within an Environment [GUESS: 409].

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::sid::Prefix;
use crate::store::{Kind, Record, Write};

const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_BYTES: usize = 450;

/// The stored fields of a Variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariableData {
    /// The Service.
    pub service_sid: String,
    /// Name.
    pub key: String,
    /// Value (returned in clear text, as Twilio does).
    pub value: String,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

fn key_of(env: &str, key: &str) -> String {
    format!("variable:{env}:{key}")
}

fn check_value(value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_param(format!(
            "Invalid value for parameter Value: at most {MAX_VALUE_BYTES} bytes allowed"
        )));
    }
    Ok(())
}

fn duplicate(key: &str) -> ApiError {
    ApiError::conflict(format!(
        "Variable with Key {key:?} already exists in this Environment"
    ))
}

impl ControlPlane {
    fn render_variable(&self, rec: &Record, d: &VariableData) -> Value {
        let env = rec.parent_sid.as_deref().unwrap_or_default();
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": d.service_sid,
            "environment_sid": env,
            "key": d.key,
            "value": d.value,
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&format!(
                "/Services/{}/Environments/{env}/Variables/{}",
                d.service_sid, rec.sid
            )),
        })
    }

    async fn variable(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        id: &str,
    ) -> Result<Record, ApiError> {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        self.load(ctx, Kind::Variable, Prefix::Variable, id, Some(&env.sid))
            .await
    }

    pub(super) async fn list_variables(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        self.list_page(
            ctx,
            Kind::Variable,
            Some(env.sid),
            "variables",
            ListFilter::default(),
            |r| Ok(self.render_variable(r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_variable(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        id: &str,
    ) -> ApiResult {
        let rec = self.variable(ctx, svc, env, id).await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_variable(&rec, &rec.decode()?),
        ))
    }

    // Functions read Variables at the edge, which learns of changes through its Environment
    // (the change feed follows Environments): after each change the Environment's record is
    // rewritten (`touch_environment`), and the edge in this process is waited for
    // (`changed`), so the next call has it.
    pub(super) async fn create_variable(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        form: &super::Params,
    ) -> ApiResult {
        let key = form.required("Key", MAX_KEY_CHARS)?;
        let value = form
            .get("Value")
            .ok_or_else(|| ApiError::missing("Value"))?;
        check_value(value)?;
        super::retrying(|| async move {
            let (service, env, _) = self.environment(ctx, svc, env).await?;
            let created = now();
            let data = VariableData {
                service_sid: service.sid,
                key: key.to_owned(),
                value: value.to_owned(),
                date_updated: created,
            };
            let mut rec = Record::new(
                Kind::Variable,
                Prefix::Variable.generate(),
                ctx.account.clone(),
                Some(env.sid.clone()),
                &data,
            );
            rec.created = created;
            rec.unique = vec![key_of(&env.sid, key)];
            match self.commit(vec![Write::Insert(rec.clone())]).await? {
                Ok(()) => {
                    self.touch_environment(&env.sid).await;
                    self.changed().await;
                    Ok(json_response(
                        StatusCode::CREATED,
                        &self.render_variable(&rec, &data),
                    ))
                }
                Err(_) => Err(duplicate(key)),
            }
        })
        .await
    }

    pub(super) async fn update_variable(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        id: &str,
        form: &super::Params,
    ) -> ApiResult {
        let key = form.text("Key", MAX_KEY_CHARS)?;
        if key == Some("") {
            return Err(ApiError::bad_param(
                "Invalid value for parameter Key: must not be empty",
            ));
        }
        let value = form.get("Value");
        if let Some(v) = value {
            check_value(v)?;
        }
        super::retrying(|| async move {
            let mut rec = self.variable(ctx, svc, env, id).await?;
            let mut data: VariableData = rec.decode()?;
            if let Some(k) = key {
                data.key = k.to_owned();
            }
            if let Some(v) = value {
                data.value = v.to_owned();
            }
            data.date_updated = now();
            rec.encode(&data);
            rec.unique = vec![key_of(
                rec.parent_sid.as_deref().unwrap_or_default(),
                &data.key,
            )];
            match self.commit(vec![Write::Update(rec.clone())]).await? {
                Ok(()) => {
                    self.touch_environment(rec.parent_sid.as_deref().unwrap_or_default())
                        .await;
                    self.changed().await;
                    Ok(json_response(
                        StatusCode::OK,
                        &self.render_variable(&rec, &data),
                    ))
                }
                Err(_) => Err(duplicate(&data.key)),
            }
        })
        .await
    }

    pub(super) async fn delete_variable(
        &self,
        ctx: &Ctx,
        svc: &str,
        env: &str,
        id: &str,
    ) -> ApiResult {
        super::retrying(|| async move {
            let rec = self.variable(ctx, svc, env, id).await?;
            let env_sid = rec.parent_sid.clone().unwrap_or_default();
            self.db(move |s| s.commit(vec![Write::Delete(rec.sid)]))
                .await?;
            self.touch_environment(&env_sid).await;
            self.changed().await;
            Ok(super::no_content())
        })
        .await
    }
}
