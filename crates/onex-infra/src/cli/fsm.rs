//! `fsm`: print a reducer's state machine as Mermaid or DOT.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use onex_core::contract::{ContractDocument, load_document};
use onex_core::fsm::{to_dot, to_mermaid};

use super::DiagramFormat;

pub(super) fn run(format: DiagramFormat, contract: &Path) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let bytes = match std::fs::read(contract) {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = writeln!(err, "{}: cannot read: {e}", contract.display());
            return ExitCode::FAILURE;
        }
    };
    let fsm = match load_document(&contract.display().to_string(), &bytes) {
        Ok(loaded) => match loaded.value {
            ContractDocument::Fsm(fsm) => *fsm,
            ContractDocument::Node(node) => match node.state_machine {
                Some(fsm) => fsm,
                None => {
                    let _ = writeln!(err, "{}: node `{}` has no state_machine", contract.display(), node.name);
                    return ExitCode::FAILURE;
                }
            },
            _ => {
                let _ = writeln!(err, "{}: not a reducer contract or FSM", contract.display());
                return ExitCode::FAILURE;
            }
        },
        Err(errors) => {
            let _ = writeln!(err, "{errors}");
            return ExitCode::FAILURE;
        }
    };
    let text = match format {
        DiagramFormat::Mermaid => to_mermaid(&fsm),
        DiagramFormat::Dot => to_dot(&fsm),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
