//! Realm roles and a user's realm role mappings: `GET/POST /roles`, `GET /roles/{name}`, and
//! `GET/POST/DELETE /users/{id}/role-mappings[/realm[/composite|/available]]`, with Keycloak's
//! two `RoleRepresentation` serialisations, its composite expansion and its refusals.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::http::{
    Params, admin_json, attributes_json, created, encode_segment, error, error_message, new_uuid, no_content,
    parse_attributes, parse_json, server_error, wrong_shape,
};
use super::{Shared, State};

/// A realm role.
#[derive(Debug, Clone)]
pub struct Role {
    /// Its UUID.
    pub id: String,
    /// Its unique name (case-sensitive, as Keycloak's).
    pub name: String,
    /// Absent unless given (then the key is left out of every representation).
    pub description: Option<String>,
    /// Ids of the roles it is composed of; `composite` is derived from this being non-empty.
    pub composites: Vec<String>,
    /// Stored and returned on single reads.
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl Role {
    fn new(name: &str, description: Option<&str>) -> Self {
        Self {
            id: new_uuid(),
            name: name.to_owned(),
            description: description.map(str::to_owned),
            composites: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }
}

/// The roles of a new realm, in Keycloak's creation order: `offline_access`,
/// `uma_authorization`, then `default-roles-{realm}` composed of both, then `extra`.
pub fn seed(realm: &str, extra: &[String]) -> Vec<Role> {
    let offline = Role::new("offline_access", Some("${role_offline-access}"));
    let uma = Role::new("uma_authorization", Some("${role_uma_authorization}"));
    let mut default = Role::new(&default_role_name(realm), Some("${role_default-roles}"));
    default.composites = vec![offline.id.clone(), uma.id.clone()];
    let mut roles = vec![offline, uma, default];
    for name in extra {
        if !roles.iter().any(|r| &r.name == name) {
            roles.push(Role::new(name, None));
        }
    }
    roles
}

/// `default-roles-{realm}`: every new user is mapped to it.
pub fn default_role_name(realm: &str) -> String {
    format!("default-roles-{realm}")
}

/// The brief serialisation (listings, role-mapping bodies): six keys, `description` absent
/// when unset. The full one (single reads, `briefRepresentation=false`) adds `attributes`.
pub fn role_json(role: &Role, realm_id: &str, brief: bool) -> Json {
    let mut object = Map::new();
    object.insert("id".into(), json!(role.id));
    object.insert("name".into(), json!(role.name));
    if let Some(description) = &role.description {
        object.insert("description".into(), json!(description));
    }
    object.insert("composite".into(), json!(!role.composites.is_empty()));
    object.insert("clientRole".into(), json!(false));
    object.insert("containerId".into(), json!(realm_id));
    if !brief {
        object.insert("attributes".into(), attributes_json(&role.attributes));
    }
    Json::Object(object)
}

/// `briefRepresentation` as the role endpoints read it: `true` unless it says `false`.
fn brief(params: &Params) -> bool {
    params.get("briefRepresentation").is_none_or(|v| !v.eq_ignore_ascii_case("false"))
}

/// `GET /roles` (`search` over name and description, case-insensitive; `first`/`max` page when
/// searching or when both are given; `briefRepresentation`, default true).
pub fn list(shared: &Shared, params: &Params) -> Response {
    let state = shared.lock();
    let search = params.get("search").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let matches = |role: &&Role| {
        search.as_deref().is_none_or(|term| {
            role.name.to_lowercase().contains(term)
                || role.description.as_deref().is_some_and(|d| d.to_lowercase().contains(term))
        })
    };
    let found: Vec<&Role> = state.roles.iter().filter(matches).collect();
    let (first, max) = (params.int("first"), params.int("max"));
    let paged = search.is_some() || (first.is_some() && max.is_some());
    let skip = if paged { first.and_then(|f| usize::try_from(f).ok()).unwrap_or(0) } else { 0 };
    let take = if paged { max.and_then(|m| usize::try_from(m).ok()).unwrap_or(usize::MAX) } else { usize::MAX };
    let brief = brief(params);
    let body: Vec<Json> =
        found.into_iter().skip(skip).take(take).map(|r| role_json(r, &state.realm_id, brief)).collect();
    admin_json(&Json::Array(body))
}

/// `GET /roles/{role-name}`: the full serialisation.
pub fn get(shared: &Shared, name: &str) -> Response {
    let state = shared.lock();
    match state.roles.iter().find(|r| r.name == name) {
        Some(role) => admin_json(&role_json(role, &state.realm_id, false)),
        None => error(StatusCode::NOT_FOUND, "Could not find role"),
    }
}

/// `POST /roles` with `{name, description?, attributes?}`: `201` and a `Location` naming the
/// role by name.
pub fn create(shared: &Shared, body: &[u8]) -> Response {
    let rep = match parse_json(body) {
        Ok(Some(Json::Object(rep))) => rep,
        Ok(Some(_)) => return wrong_shape(),
        Ok(None) => return server_error(),
        Err(refusal) => return *refusal,
    };
    let text = |key: &str| match rep.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let (Ok(name), Ok(description)) = (text("name"), text("description")) else { return wrong_shape() };
    let attributes = match rep.get("attributes") {
        None | Some(Json::Null) => BTreeMap::new(),
        Some(value) => match parse_attributes(value) {
            Ok(attributes) => attributes,
            Err(()) => return wrong_shape(),
        },
    };
    let Some(name) = name else { return error(StatusCode::BAD_REQUEST, "role has no name") };
    let mut state = shared.lock();
    if state.roles.iter().any(|r| r.name == name) {
        return error_message(StatusCode::CONFLICT, &format!("Role with name {name} already exists"));
    }
    let mut role = Role::new(&name, description.as_deref());
    role.attributes = attributes;
    state.roles.push(role);
    drop(state);
    created(&format!("{}/roles/{}", shared.admin_base(), encode_segment(&name)))
}

/// Roles reachable from `direct` through composites (each once), in realm order.
pub fn effective(state: &State, direct: &[String]) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = direct.to_vec();
    while let Some(id) = pending.pop() {
        if seen.insert(id.clone())
            && let Some(role) = state.roles.iter().find(|r| r.id == id)
        {
            pending.extend(role.composites.iter().cloned());
        }
    }
    state.roles.iter().filter(|r| seen.contains(&r.id)).map(|r| r.id.clone()).collect()
}

/// Brief representations of the roles with these ids, in realm order.
fn roles_json(state: &State, ids: &[String], brief: bool) -> Json {
    let body =
        state.roles.iter().filter(|r| ids.contains(&r.id)).map(|r| role_json(r, &state.realm_id, brief)).collect();
    Json::Array(body)
}

/// The role-mapping reads under `/users/{id}/role-mappings`: `tail` is what follows it
/// (`[]`, `["realm"]`, `["realm", "composite"]`, `["realm", "available"]`).
pub fn read_mappings(shared: &Shared, user_id: &str, tail: &[&str], params: &Params) -> Option<Response> {
    let state = shared.lock();
    let direct = state.users.get(user_id).map(|u| u.roles.clone()).unwrap_or_default();
    let body = match tail {
        [] if direct.is_empty() => json!({}),
        [] => json!({ "realmMappings": roles_json(&state, &direct, true) }),
        ["realm"] => roles_json(&state, &direct, true),
        ["realm", "composite"] => roles_json(&state, &effective(&state, &direct), brief(params)),
        ["realm", "available"] => {
            let available: Vec<String> =
                state.roles.iter().filter(|r| !direct.contains(&r.id)).map(|r| r.id.clone()).collect();
            roles_json(&state, &available, true)
        }
        _ => return None,
    };
    Some(admin_json(&body))
}

/// `POST` (`grant`) or `DELETE` `/users/{id}/role-mappings/realm` with a JSON array of role
/// representations. Keycloak looks each role up by `name` and requires its `id` to match;
/// every entry is checked before any is applied (a refusal changes nothing). Granting a held
/// role or removing an unheld one is a no-op. A `DELETE` without a body removes every realm
/// mapping; a `POST` without one fails as Keycloak's does (`500`).
pub fn write_mappings(shared: &Shared, user_id: &str, grant: bool, body: &[u8]) -> Response {
    let entries = match parse_json(body) {
        Ok(Some(Json::Array(entries))) => Some(entries),
        Ok(Some(_)) => return wrong_shape(),
        Ok(None) if grant => return server_error(),
        Ok(None) => None,
        Err(refusal) => return *refusal,
    };
    let mut state = shared.lock();
    let Some(entries) = entries else {
        if let Some(user) = state.users.get_mut(user_id) {
            user.roles.clear();
        }
        return no_content(false);
    };
    let mut ids = Vec::with_capacity(entries.len());
    for entry in &entries {
        let Json::Object(rep) = entry else { return wrong_shape() };
        let field = |key: &str| match rep.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(()),
        };
        let (Ok(name), Ok(id)) = (field("name"), field("id")) else { return wrong_shape() };
        match state.roles.iter().find(|r| Some(r.name.as_str()) == name) {
            Some(role) if Some(role.id.as_str()) == id => ids.push(role.id.clone()),
            _ => return error(StatusCode::NOT_FOUND, "Role not found"),
        }
    }
    if let Some(user) = state.users.get_mut(user_id) {
        for id in ids {
            let held = user.roles.contains(&id);
            if grant && !held {
                user.roles.push(id);
            } else if !grant && held {
                user.roles.retain(|r| r != &id);
            }
        }
    }
    no_content(false)
}
