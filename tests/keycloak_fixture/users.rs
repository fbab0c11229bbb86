//! Users: `POST/GET /users`, `GET /users/count`, `GET/PUT/DELETE /users/{id}`, with Keycloak's
//! `UserRepresentation`, its search semantics, its duplicate and validation refusals and the
//! default role mapping of a new user.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::http::{
    Params, Refusal, admin_json, attributes_json, created, error, error_message, new_uuid, no_content, now_millis,
    parse_attributes, parse_json, server_error, wrong_shape,
};
use super::roles::default_role_name;
use super::{Shared, State};

/// A user of the realm.
#[derive(Debug, Clone)]
pub struct User {
    /// Its UUID.
    pub id: String,
    /// Lowercased, unique, fixed at creation (the realm does not allow editing usernames).
    pub username: String,
    /// Lowercased, unique when set.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub enabled: bool,
    pub email_verified: bool,
    pub attributes: BTreeMap<String, Vec<String>>,
    pub required_actions: Vec<String>,
    /// The last password credential given (never returned by the API).
    pub password: Option<String>,
    /// Ids of the realm roles mapped to the user directly.
    pub roles: Vec<String>,
    /// Milliseconds since the epoch.
    pub created: u64,
}

/// The fields of a `UserRepresentation` the fixture reads; `None` is absent or `null`.
#[derive(Debug, Default)]
struct Rep {
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    enabled: Option<bool>,
    email_verified: Option<bool>,
    attributes: Option<BTreeMap<String, Vec<String>>>,
    required_actions: Option<Vec<String>>,
    /// `(value, temporary)` of each `password` credential.
    passwords: Vec<(String, bool)>,
}

/// Reads a representation; a field of the wrong JSON type is `Err` (Jackson's mapping error).
fn parse_rep(object: &Map<String, Json>) -> Result<Rep, ()> {
    let text = |key: &str| match object.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    let flag = |key: &str| match object.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(()),
    };
    let strings = |value: &Json| match value {
        Json::Array(items) => items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(())).collect(),
        _ => Err(()),
    };
    let mut rep = Rep {
        username: text("username")?,
        email: text("email")?,
        first_name: text("firstName")?,
        last_name: text("lastName")?,
        enabled: flag("enabled")?,
        email_verified: flag("emailVerified")?,
        ..Rep::default()
    };
    if let Some(value) = object.get("attributes").filter(|v| !v.is_null()) {
        rep.attributes = Some(parse_attributes(value)?);
    }
    if let Some(value) = object.get("requiredActions").filter(|v| !v.is_null()) {
        rep.required_actions = Some(strings(value)?);
    }
    if let Some(value) = object.get("credentials").filter(|v| !v.is_null()) {
        let Json::Array(credentials) = value else { return Err(()) };
        for credential in credentials {
            let Json::Object(credential) = credential else { return Err(()) };
            let kind = credential.get("type").and_then(Json::as_str).unwrap_or("password");
            let temporary = credential.get("temporary").and_then(Json::as_bool).unwrap_or(false);
            if let (true, Some(value)) = (kind == "password", credential.get("value").and_then(Json::as_str)) {
                rep.passwords.push((value.to_owned(), temporary));
            }
        }
    }
    Ok(rep)
}

/// Decodes a user body: `Err` is the answer for an unreadable or empty one.
fn read_rep(body: &[u8]) -> Result<Rep, Refusal> {
    match parse_json(body) {
        Ok(Some(Json::Object(object))) => parse_rep(&object).map_err(|()| Box::new(wrong_shape())),
        Ok(Some(_)) => Err(Box::new(wrong_shape())),
        Ok(None) => Err(Box::new(server_error())),
        Err(refusal) => Err(refusal),
    }
}

/// Keycloak's user-profile checks of the default realm configuration: a username of 3 to 255
/// characters and a well-formed email. One failure is answered alone, several as `errors`.
fn validate(username: &str, email: Option<&str>) -> Result<(), Refusal> {
    let mut errors = Vec::new();
    if !(3..=255).contains(&username.chars().count()) {
        errors
            .push(json!({"field": "username", "errorMessage": "error-invalid-length", "params": ["username", 3, 255]}));
    }
    if let Some(email) = email.filter(|e| !is_email(e)) {
        errors.push(json!({"field": "email", "errorMessage": "error-invalid-email", "params": ["email", email]}));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(Box::new(super::http::json(StatusCode::BAD_REQUEST, &errors.remove(0)))),
        _ => Err(Box::new(super::http::json(StatusCode::BAD_REQUEST, &json!({ "errors": errors })))),
    }
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// Applies a password credential: kept, and a temporary one adds `UPDATE_PASSWORD`.
fn apply_passwords(user: &mut User, passwords: Vec<(String, bool)>) {
    for (value, temporary) in passwords {
        user.password = Some(value);
        if temporary && !user.required_actions.iter().any(|a| a == "UPDATE_PASSWORD") {
            user.required_actions.push("UPDATE_PASSWORD".to_owned());
        }
    }
}

fn other_holds(state: &State, self_id: &str, pred: impl Fn(&User) -> bool) -> bool {
    state.users.values().any(|u| u.id != self_id && pred(u))
}

/// `POST /users`: `201` with the new user's `Location`.
pub fn create(shared: &Shared, body: &[u8]) -> Response {
    let rep = match read_rep(body) {
        Ok(rep) => rep,
        Err(refusal) => return *refusal,
    };
    let username = rep.username.as_deref().unwrap_or("").trim().to_lowercase();
    if username.is_empty() {
        return error_message(StatusCode::BAD_REQUEST, "User name is missing");
    }
    let email = rep.email.as_deref().map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
    let mut state = shared.lock();
    if state.users.values().any(|u| u.username == username) {
        return error_message(StatusCode::CONFLICT, "User exists with same username");
    }
    if email.is_some() && state.users.values().any(|u| u.email == email) {
        return error_message(StatusCode::CONFLICT, "User exists with same email");
    }
    if let Err(refusal) = validate(&username, email.as_deref()) {
        return *refusal;
    }
    let default_role = default_role_name(&shared.options.realm);
    let roles = state.roles.iter().filter(|r| r.name == default_role).map(|r| r.id.clone()).collect();
    let mut user = User {
        id: new_uuid(),
        username,
        email,
        first_name: rep.first_name.filter(|s| !s.is_empty()),
        last_name: rep.last_name.filter(|s| !s.is_empty()),
        enabled: rep.enabled.unwrap_or(false),
        email_verified: rep.email_verified.unwrap_or(false),
        attributes: rep.attributes.unwrap_or_default(),
        required_actions: Vec::new(),
        password: None,
        roles,
        created: now_millis(),
    };
    for action in rep.required_actions.unwrap_or_default() {
        if !user.required_actions.contains(&action) {
            user.required_actions.push(action);
        }
    }
    apply_passwords(&mut user, rep.passwords);
    let id = user.id.clone();
    state.users.insert(id.clone(), user);
    drop(state);
    created(&format!("{}/users/{id}", shared.admin_base()))
}

/// The representation of `user`: `access` is the six-flag block of a single read, the one-flag
/// block of a listing; `brief` drops `totp`, `disableableCredentialTypes`, `requiredActions`
/// and `notBefore`. `attributes` is left out when the user has none.
pub fn user_json(user: &User, single: bool, brief: bool) -> Json {
    let mut object = Map::new();
    object.insert("id".into(), json!(user.id));
    object.insert("username".into(), json!(user.username));
    for (key, value) in [("firstName", &user.first_name), ("lastName", &user.last_name), ("email", &user.email)] {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
    object.insert("emailVerified".into(), json!(user.email_verified));
    if !user.attributes.is_empty() {
        object.insert("attributes".into(), attributes_json(&user.attributes));
    }
    object.insert("enabled".into(), json!(user.enabled));
    object.insert("createdTimestamp".into(), json!(user.created));
    if !brief {
        object.insert("totp".into(), json!(false));
        object.insert("disableableCredentialTypes".into(), json!([]));
        object.insert("requiredActions".into(), json!(user.required_actions));
        object.insert("notBefore".into(), json!(0));
    }
    let access = if single {
        json!({"manageGroupMembership": true, "resetPassword": true, "view": true, "mapRoles": true, "impersonate": true, "manage": true})
    } else {
        json!({"manage": true})
    };
    object.insert("access".into(), access);
    Json::Object(object)
}

/// `GET /users/{id}`.
pub fn get(shared: &Shared, id: &str) -> Response {
    match shared.lock().users.get(id) {
        Some(user) => admin_json(&user_json(user, true, false)),
        None => not_found(),
    }
}

/// The admin API's unknown-user answer.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "User not found")
}

/// Whether `value` matches one `search` term: a case-insensitive prefix, or a whole-value
/// pattern when the term holds `*` wildcards.
fn term_matches(term: &str, value: &str) -> bool {
    if !term.contains('*') {
        return value.starts_with(term);
    }
    let parts: Vec<&str> = term.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else { return false };
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last) {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The user filter of `GET /users` and `/users/count`.
fn matches(user: &User, params: &Params) -> bool {
    let fields = [Some(&user.username), user.email.as_ref(), user.first_name.as_ref(), user.last_name.as_ref()];
    let lower: Vec<String> = fields.iter().flatten().map(|v| v.to_lowercase()).collect();
    if params.boolean("enabled").is_some_and(|e| e != user.enabled)
        || params.boolean("emailVerified").is_some_and(|v| v != user.email_verified)
    {
        return false;
    }
    if let Some(search) = params.get("search").map(|s| s.trim().to_lowercase()) {
        if let Some(exact) = search.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            return lower.iter().any(|v| v == exact);
        }
        return search.split_whitespace().all(|term| lower.iter().any(|v| term_matches(term, v)));
    }
    let exact = params.boolean("exact").unwrap_or(false);
    let named = [
        ("username", Some(&user.username)),
        ("email", user.email.as_ref()),
        ("firstName", user.first_name.as_ref()),
        ("lastName", user.last_name.as_ref()),
    ];
    for (key, value) in named {
        if let Some(wanted) = params.get(key).map(str::to_lowercase) {
            let value = value.map(|v| v.to_lowercase()).unwrap_or_default();
            if !(if exact { value == wanted } else { value.contains(&wanted) }) {
                return false;
            }
        }
    }
    params.get("q").is_none_or(|q| {
        q.split_whitespace()
            .filter_map(|pair| pair.split_once(':'))
            .all(|(key, wanted)| user.attributes.get(key).is_some_and(|values| values.iter().any(|v| v == wanted)))
    })
}

fn filtered<'a>(state: &'a State, params: &Params) -> Vec<&'a User> {
    let mut found: Vec<&User> = state.users.values().filter(|u| matches(u, params)).collect();
    found.sort_by(|a, b| a.username.cmp(&b.username));
    found
}

/// `GET /users` (`search`, `username`, `email`, `firstName`, `lastName`, `exact`, `enabled`,
/// `emailVerified`, `q`, `first` (default 0), `max` (default 100), `briefRepresentation`):
/// sorted by username.
pub fn list(shared: &Shared, params: &Params) -> Response {
    let state = shared.lock();
    let first = params.int("first").and_then(|f| usize::try_from(f).ok()).unwrap_or(0);
    let max = match params.int("max") {
        None => 100,
        Some(m) => usize::try_from(m).unwrap_or(usize::MAX),
    };
    let brief = params.boolean("briefRepresentation").unwrap_or(false);
    let body: Vec<Json> =
        filtered(&state, params).into_iter().skip(first).take(max).map(|u| user_json(u, false, brief)).collect();
    admin_json(&Json::Array(body))
}

/// `GET /users/count`: a bare number.
pub fn count(shared: &Shared, params: &Params) -> Response {
    admin_json(&json!(filtered(&shared.lock(), params).len()))
}

/// `PUT /users/{id}`: merges the fields given; `204`.
pub fn update(shared: &Shared, id: &str, body: &[u8]) -> Response {
    let rep = match read_rep(body) {
        Ok(rep) => rep,
        Err(refusal) => return *refusal,
    };
    let mut state = shared.lock();
    let Some(current) = state.users.get(id).cloned() else { return not_found() };
    if let Some(username) = rep.username.as_deref().map(|u| u.trim().to_lowercase())
        && username != current.username
        && other_holds(&state, id, |u| u.username == username)
    {
        return error_message(StatusCode::CONFLICT, "User exists with same username");
    }
    let email = rep.email.as_deref().map(|e| e.trim().to_lowercase());
    if let Some(wanted) = email.as_deref().filter(|e| !e.is_empty()) {
        if other_holds(&state, id, |u| u.email.as_deref() == Some(wanted)) {
            return error_message(StatusCode::CONFLICT, "User exists with same email");
        }
        if let Err(refusal) = validate(&current.username, Some(wanted)) {
            return *refusal;
        }
    }
    let Some(user) = state.users.get_mut(id) else { return not_found() };
    if let Some(email) = email {
        user.email = Some(email).filter(|e| !e.is_empty());
    }
    if let Some(first) = rep.first_name {
        user.first_name = Some(first).filter(|s| !s.is_empty());
    }
    if let Some(last) = rep.last_name {
        user.last_name = Some(last).filter(|s| !s.is_empty());
    }
    if let Some(enabled) = rep.enabled {
        user.enabled = enabled;
    }
    if let Some(verified) = rep.email_verified {
        user.email_verified = verified;
    }
    if let Some(attributes) = rep.attributes {
        user.attributes = attributes;
    }
    if let Some(actions) = rep.required_actions {
        user.required_actions.clear();
        for action in actions {
            if !user.required_actions.contains(&action) {
                user.required_actions.push(action);
            }
        }
    }
    apply_passwords(user, rep.passwords);
    no_content(false)
}

/// `DELETE /users/{id}`: `204` with `Cache-Control: no-cache`.
pub fn delete(shared: &Shared, id: &str) -> Response {
    match shared.lock().users.remove(id) {
        Some(_) => no_content(true),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_prefixes_or_wildcard_patterns() {
        assert!(term_matches("full", "full-user"));
        assert!(!term_matches("user", "full-user"));
        assert!(term_matches("*user", "full-user"));
        assert!(term_matches("*ull*", "full-user"));
        assert!(!term_matches("user*", "full-user"));
        assert!(term_matches("f*l*r", "full-user"));
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert!(is_email("a@b.example"));
        for bad in ["a", "@b", "a@", "a@b@c", "a b@c", "a@.b"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
