//! Logs (`NO`): CONTRACT.md §4.9. The edge writes the lines through
//! [`crate::logsink::LogSink`]; lines older than 30 days (Twilio's retention) go in the
//! upkeep (maintenance.rs).

use http::StatusCode;
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now, parse_iso};
use crate::logsink::LogData;
use crate::sid::Prefix;
use crate::store::{Kind, Record};

/// How long log lines are kept.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;

impl ControlPlane {
    fn render_log(&self, rec: &Record, d: &LogData) -> Value {
        let env = rec.parent_sid.as_deref().unwrap_or_default();
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": d.service_sid,
            "environment_sid": env,
            "build_sid": d.build_sid,
            "deployment_sid": d.deployment_sid,
            "function_sid": d.function_sid,
            "request_sid": d.request_sid,
            "level": d.level,
            "message": d.message,
            "date_created": iso(rec.created),
            "url": self.url(&format!(
                "/Services/{}/Environments/{env}/Logs/{}",
                d.service_sid, rec.sid
            )),
        })
    }

    pub(super) async fn list_logs(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        let mut filter = ListFilter::default();
        let date = |name: &'static str| -> Result<Option<i64>, ApiError> {
            ctx.query
                .get(name)
                .map(|v| {
                    parse_iso(v).ok_or_else(|| {
                        ApiError::bad_param(format!(
                            "Invalid value for parameter {name}: {v:?} is not an ISO 8601 date-time"
                        ))
                    })
                })
                .transpose()
        };
        let start = date("StartDate")?;
        let end = date("EndDate")?;
        filter.created_from = Some(start.unwrap_or_else(|| now() - 24 * 3600));
        filter.created_to = Some(end.unwrap_or_else(now));
        for (name, given) in [("StartDate", start), ("EndDate", end)] {
            if given.is_some() {
                let raw = ctx.query.get(name).unwrap_or_default().to_owned();
                filter.echo.push((name, raw));
            }
        }
        if let Some(f) = ctx.query.get("FunctionSid") {
            let sid = Prefix::Resource.parse(f).ok_or_else(|| {
                ApiError::bad_param(format!(
                    "Invalid value for parameter FunctionSid: {f:?} is not a Function SID (ZH…)"
                ))
            })?;
            filter.echo.push(("FunctionSid", sid.clone()));
            filter.tag = Some(sid);
        }
        self.list_page(ctx, Kind::Log, Some(env.sid), "logs", filter, |r| {
            Ok(self.render_log(r, &r.decode()?))
        })
        .await
    }

    pub(super) async fn fetch_log(&self, ctx: &Ctx, svc: &str, env: &str, id: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        let rec = self
            .load(ctx, Kind::Log, Prefix::Log, id, Some(&env.sid))
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_log(&rec, &rec.decode()?),
        ))
    }
}
