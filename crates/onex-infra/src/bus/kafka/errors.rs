//! librdkafka's errors as the bus's: refused for good (too large, unknown topic), denied
//! (credentials, ACLs), or unavailable and worth trying again (everything else: brokers down,
//! leaders moving, timeouts).

use onex_spi::SpiError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::codes;

/// `error`, met while `context` (e.g. "publishing to `onex.cmd.x.v1`"), as an spi error.
pub(crate) fn to_spi(error: KafkaError, context: &str) -> SpiError {
    let code = match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition,
        ) => codes::KAFKA_REJECTED,
        Some(
            RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => codes::KAFKA_DENIED,
        _ => codes::KAFKA_UNAVAILABLE,
    };
    SpiError::new(code, format!("{context}: {error}")).with_source(error)
}

#[cfg(test)]
mod tests {
    use onex_core::error::ErrorCategory;

    use super::*;

    #[test]
    fn errors_are_refused_denied_or_worth_retrying() {
        let refused = to_spi(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), "publishing");
        assert_eq!(refused.category(), ErrorCategory::Validation);
        assert!(refused.message().starts_with("publishing: "), "{refused}");
        let denied = to_spi(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed), "publishing");
        assert_eq!(denied.category(), ErrorCategory::Auth);
        let down = to_spi(KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown), "publishing");
        assert!(down.retryable(), "{down}");
    }
}
