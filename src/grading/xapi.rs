//! An xAPI sink: participation events as statements to a Learning Record
//! Store (`POST {endpoint}/statements`, xAPI 1.0.3, Basic auth), with the
//! verbs of the Virtual Classroom profile. Statement ids are derived from the
//! event ids, so a retry can never count twice: the LRS already has that id.

use super::deliver::{SendError, Sink};
use super::webhook::{http_client, refusal};
use crate::store::DeliveryRow;
use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const VC: &str = "https://w3id.org/xapi/virtual-classroom";

pub struct Xapi {
    name: String,
    statements_url: String,
    username: String,
    password: String,
    /// Base of activity ids and of the accounts' home page.
    base: String,
    client: reqwest::Client,
}

impl Xapi {
    pub fn new(
        name: &str,
        endpoint: &str,
        username: &str,
        password: &str,
        base: &str,
    ) -> Result<Xapi, String> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!(
                "xapi {name}: endpoint must start with http:// or https://"
            ));
        }
        Ok(Xapi {
            name: name.to_string(),
            statements_url: format!("{}/statements", endpoint.trim_end_matches('/')),
            username: username.to_string(),
            password: password.to_string(),
            base: base.trim_end_matches('/').to_string(),
            client: http_client(),
        })
    }
}

/// A name-based UUID (the version-8 layout) from SHA-256 of `name`: the same
/// name always gives the same UUID.
pub fn uuid_for(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn verb(id: &str, display: &str) -> Value {
    json!({ "id": id, "display": { "en-US": display } })
}

/// The verb of a participation type (docs/grading.md has the table).
pub fn verb_of(kind: &str) -> Option<Value> {
    Some(match kind {
        "session.started" => verb("http://adlnet.gov/expapi/verbs/initialized", "initialized"),
        "session.ended" => verb("http://adlnet.gov/expapi/verbs/terminated", "terminated"),
        "participant.joined" => verb("http://activitystrea.ms/join", "joined"),
        "participant.left" => verb("http://activitystrea.ms/leave", "left"),
        "attendance.summary" => verb("http://adlnet.gov/expapi/verbs/attended", "attended"),
        "question.asked" => verb("http://adlnet.gov/expapi/verbs/asked", "asked"),
        "reply.posted" | "poll.answered" => {
            verb("http://adlnet.gov/expapi/verbs/answered", "answered")
        }
        "chat.posted" => verb("http://adlnet.gov/expapi/verbs/commented", "commented"),
        "upvote.given" => verb("http://id.tincanapi.com/verb/voted-up", "voted up"),
        "hand.raised" => verb(&format!("{VC}/verbs/reacted"), "reacted"),
        "hand.lowered" => verb(&format!("{VC}/verbs/unreacted"), "unreacted"),
        "stage.joined" => verb("http://activitystrea.ms/start", "started"),
        "stage.left" => verb(&format!("{VC}/verbs/stopped"), "stopped"),
        "presence_check.passed" => verb("http://adlnet.gov/expapi/verbs/passed", "passed"),
        "presence_check.missed" => verb("http://adlnet.gov/expapi/verbs/failed", "failed"),
        "score.computed" => verb("http://adlnet.gov/expapi/verbs/scored", "scored"),
        "replay.watched" => verb("http://activitystrea.ms/watch", "watched"),
        _ => return None,
    })
}

/// ISO 8601 duration of whole seconds (`PT3725S`).
fn duration(secs: i64) -> String {
    format!("PT{}S", secs.max(0))
}

impl Xapi {
    /// The statement for one stored participation event.
    pub fn statement(&self, e: &Value) -> Option<Value> {
        let kind = e["type"].as_str()?;
        let verb = verb_of(kind)?;
        let session = e["session_id"].as_str()?;
        let data = &e["data"];
        let classroom_id = format!("{}/sessions/{session}", self.base);
        let classroom = json!({
            "objectType": "Activity",
            "id": classroom_id,
            "definition": { "type": format!("{VC}/activity-types/virtual-classroom") }
        });
        let identity = e["identity"].as_str().unwrap_or_default();
        let actor = if identity.is_empty() {
            json!({ "objectType": "Agent", "account": { "homePage": self.base, "name": "lectern" } })
        } else {
            json!({ "objectType": "Agent", "account": { "homePage": self.base, "name": identity } })
        };
        let mut object = classroom.clone();
        let mut result = None;
        match kind {
            "question.asked" | "reply.posted" | "upvote.given" => {
                object = json!({
                    "objectType": "Activity",
                    "id": format!("{classroom_id}/questions/{}", data["question_id"]),
                    "definition": { "type": "http://adlnet.gov/expapi/activities/question" }
                });
            }
            "poll.answered" => {
                object = json!({
                    "objectType": "Activity",
                    "id": format!("{classroom_id}/polls/{}", data["poll_id"]),
                    "definition": { "type": "http://adlnet.gov/expapi/activities/cmi.interaction" }
                });
                if let Some(ok) = data["correct"].as_bool() {
                    result =
                        Some(json!({ "success": ok, "response": data["choices"].to_string() }));
                }
            }
            "presence_check.passed" | "presence_check.missed" => {
                object = json!({
                    "objectType": "Activity",
                    "id": format!("{classroom_id}/presence-checks/{}", data["check_id"]),
                    "definition": { "type": "http://adlnet.gov/expapi/activities/assessment" }
                });
                result = Some(json!({ "success": kind == "presence_check.passed" }));
            }
            "attendance.summary" => {
                result = Some(json!({
                    "duration": duration(data["present_seconds"].as_i64().unwrap_or(0)),
                    "completion": true
                }));
            }
            "participant.left" => {
                result = Some(
                    json!({ "duration": duration(data["interval_seconds"].as_i64().unwrap_or(0)) }),
                );
            }
            "score.computed" => {
                let raw = data["total"].as_f64().unwrap_or(0.0);
                let max = data["max"].as_f64().unwrap_or(0.0);
                let mut score = json!({ "raw": raw, "min": 0.0, "max": max });
                if max > 0.0 {
                    score["scaled"] = json!((raw / max).clamp(0.0, 1.0));
                }
                result = Some(json!({ "score": score }));
            }
            _ => {}
        }
        let mut st = json!({
            "id": uuid_for(e["id"].as_str()?),
            "actor": actor,
            "verb": verb,
            "object": object,
            "timestamp": e["at"],
            "context": {
                // The same for every statement of a planned session.
                "registration": uuid_for(&format!("lectern-session:{session}")),
                "platform": "Lectern",
                "contextActivities": { "parent": [classroom] },
                "extensions": {
                    "https://w3id.org/xapi/cmi5/context/extensions/sessionid": session,
                    format!("{}/xapi/extensions/event", self.base): { "id": e["id"], "type": kind, "seq": e["seq"] }
                }
            }
        });
        if let Some(r) = result {
            st["result"] = r;
        }
        Some(st)
    }

    async fn post(&self, statements: &[Value]) -> Result<reqwest::StatusCode, SendError> {
        let resp = self
            .client
            .post(&self.statements_url)
            .basic_auth(&self.username, Some(&self.password))
            .header("X-Experience-API-Version", "1.0.3")
            .header("content-type", "application/json")
            .body(Value::Array(statements.to_vec()).to_string())
            .send()
            .await
            .map_err(|e| SendError {
                message: format!("request failed: {e}"),
                retry_after: None,
            })?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            Ok(status)
        } else {
            Err(refusal(resp).await)
        }
    }
}

#[async_trait]
impl Sink for Xapi {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, _session: &str, events: &[DeliveryRow]) -> Result<(), SendError> {
        let statements: Vec<Value> = events
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter_map(|e| self.statement(&e))
            .collect();
        if statements.is_empty() {
            return Ok(());
        }
        if self.post(&statements).await? != reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        // 409: some ids are already stored (an earlier attempt got through
        // before its answer was lost). Send one by one; a conflict on one
        // statement means the LRS has it.
        for st in &statements {
            self.post(std::slice::from_ref(st)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuids() {
        let a = uuid_for("k7m2pq9xw4ra-17");
        assert_eq!(a, uuid_for("k7m2pq9xw4ra-17"));
        assert_ne!(a, uuid_for("k7m2pq9xw4ra-18"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
    }

    #[test]
    fn statements_use_the_virtual_classroom_verbs() {
        let x = Xapi::new("x", "http://lrs/xAPI", "u", "p", "https://lectern.example").unwrap();
        let e = json!({"id": "s1-3", "type": "hand.raised", "session_id": "s1", "seq": 3,
                       "identity": "t-1", "at": "2026-11-26T09:00:00.000Z", "data": {}});
        let st = x.statement(&e).unwrap();
        assert_eq!(st["verb"]["id"], format!("{VC}/verbs/reacted"));
        assert_eq!(st["actor"]["account"]["name"], "t-1");
        assert_eq!(st["id"], uuid_for("s1-3"));
        let summary = json!({"id": "s1-9", "type": "attendance.summary", "session_id": "s1", "seq": 9,
                             "identity": "t-1", "at": "2026-11-26T10:00:00.000Z",
                             "data": {"present_seconds": 3725}});
        let st = x.statement(&summary).unwrap();
        assert_eq!(st["result"]["duration"], "PT3725S");
        assert_eq!(
            st["context"]["registration"],
            x.statement(&e).unwrap()["context"]["registration"]
        );
    }
}
