//! The built-in handler types and their operations: the one list that contract validation and
//! the handlers themselves describe.

use onex_spi::{HandlerDescriptor, OperationDescriptor};

/// The names the Python runtime's handler contracts give the jobs the built-in handlers do:
/// a contract whose `handler_routing` binds `HandlerDb` is served by the built-in `db`.
pub const UPSTREAM_NAMES: &[(&str, &str)] = &[
    ("HandlerDb", "db"),
    ("HandlerHttpRest", "http"),
    ("HandlerHttp", "http"),
    ("HandlerVault", "vault"),
    ("HandlerConsul", "consul"),
];

/// `(handler type, [(operation name, description, idempotent)])`.
type Table = &'static [(&'static str, &'static [(&'static str, &'static str, bool)])];

const BUILTIN: Table = &[
    (
        "db",
        &[
            ("query", "run one parameterised SELECT; rows as typed JSON", true),
            ("execute", "run one parameterised statement; rows affected", false),
            ("transaction", "run a list of statements atomically", false),
        ],
    ),
    (
        "vault",
        &[
            ("read_secret", "read a KV secret", true),
            ("write_secret", "write a KV secret", false),
            ("delete_secret", "delete a KV secret", true),
            ("list_secrets", "list keys under a path", true),
            ("renew_token", "renew the client token", false),
        ],
    ),
    (
        "consul",
        &[
            ("kv_get", "read a key", true),
            ("kv_put", "write a key (optionally check-and-set)", false),
            ("kv_delete", "delete a key", true),
            ("register", "register a service with an HTTP check", true),
            ("deregister", "deregister a service", true),
            ("discover", "healthy instances of a service", true),
        ],
    ),
    (
        "http",
        &[
            ("get", "HTTP GET", true),
            ("post", "HTTP POST", false),
            ("put", "HTTP PUT", true),
            ("delete", "HTTP DELETE", true),
        ],
    ),
    ("kafka", &[("publish", "publish one record (topic, key, headers, value); where it landed", false)]),
    ("webhook", &[("deliver", "deliver a signed webhook, recording every attempt", false)]),
    (
        "keycloak",
        &[
            ("token", "an access token: client credentials (cached), password grant or refresh", false),
            ("verify", "verify a JWT against the realm's keys; its claims, roles and scopes", true),
            ("introspect", "RFC 7662 introspection of a token", true),
            ("userinfo", "the OpenID Connect userinfo of an access token", true),
            ("create_user", "create a user through the Admin REST API", false),
            ("get_user", "a user by id or exact username", true),
            ("assign_realm_role", "map realm roles to a user", true),
            ("remove_realm_role", "unmap realm roles from a user", true),
            ("list_user_roles", "a user's realm roles (direct or effective)", true),
        ],
    ),
    (
        "stamp",
        &[
            ("create", "stamp content and persist the stamp", true),
            ("validate", "validate a stamp against its content", true),
            ("hash", "BLAKE3 of normalised content", true),
            ("batch", "stamp many items; one failure does not fail the others", true),
            ("lookup", "the stored stamp of a content hash", true),
        ],
    ),
    (
        "local",
        &[
            ("echo", "reply with the request payload", true),
            ("fail", "fail with the error code the payload names", true),
            ("sleep", "wait the payload's `ms`, then reply", true),
        ],
    ),
];

/// Descriptors of every built-in handler type.
pub fn descriptors() -> Vec<HandlerDescriptor> {
    BUILTIN.iter().map(|(ty, _)| descriptor(ty)).collect::<Option<_>>().unwrap_or_default()
}

/// The descriptor of one built-in handler type.
pub fn descriptor(handler_type: &str) -> Option<HandlerDescriptor> {
    let (ty, ops) = BUILTIN.iter().find(|(ty, _)| *ty == handler_type)?;
    Some(HandlerDescriptor {
        handler_type: (*ty).to_owned(),
        operations: ops
            .iter()
            .map(|(name, description, idempotent)| OperationDescriptor {
                operation: format!("{ty}.{name}"),
                description: (*description).to_owned(),
                idempotent: *idempotent,
            })
            .collect(),
    })
}
