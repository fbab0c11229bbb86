//! The host's handler registry: built-in and custom factories, registered the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use onex_spi::{HandlerDescriptor, HandlerFactory, HandlerRegistry, SpiError, SpiResult};

use crate::error::codes;

/// Handler factories by handler type.
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<String, (HandlerDescriptor, Arc<dyn HandlerFactory>)>,
    /// Descriptors known without a factory (built-ins whose handlers this build does not
    /// construct): they validate contracts, nothing more.
    declared: BTreeMap<String, HandlerDescriptor>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("factories", &self.factories.keys().collect::<Vec<_>>())
            .field("declared", &self.declared.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry that knows the built-in operation catalogue.
    pub fn with_builtin_catalogue() -> Self {
        let declared = crate::builtin::descriptors().into_iter().map(|d| (d.handler_type.clone(), d)).collect();
        Self { factories: BTreeMap::new(), declared }
    }

    /// The built-in catalogue with the built-in handlers this build constructs registered
    /// through [`HandlerRegistry::register`], the same call a custom handler uses.
    pub fn with_builtin_handlers() -> SpiResult<Self> {
        let mut registry = Self::with_builtin_catalogue();
        registry.register(Arc::new(crate::handlers::LocalHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::StampHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::HttpHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::WebhookHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::DbHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::ConsulHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::VaultHandlerFactory))?;
        Ok(registry)
    }

    /// The factory for a handler type.
    pub fn factory(&self, handler_type: &str) -> Option<&Arc<dyn HandlerFactory>> {
        self.factories.get(handler_type).map(|(_, f)| f)
    }
}

impl HandlerRegistry for Registry {
    fn register(&mut self, factory: Arc<dyn HandlerFactory>) -> SpiResult<()> {
        let descriptor = factory.descriptor();
        let ty = descriptor.handler_type.clone();
        if self.factories.contains_key(&ty) {
            return Err(SpiError::new(codes::DUPLICATE_HANDLER, format!("handler type `{ty}` is already registered")));
        }
        self.declared.remove(&ty);
        self.factories.insert(ty, (descriptor, factory));
        Ok(())
    }

    fn provides(&self, operation: &str) -> bool {
        let Some((ty, _)) = operation.split_once('.') else { return false };
        let descriptor = self.factories.get(ty).map(|(d, _)| d).or_else(|| self.declared.get(ty));
        descriptor.is_some_and(|d| d.operations.iter().any(|o| o.operation == operation))
    }

    fn descriptors(&self) -> Vec<HandlerDescriptor> {
        self.factories.values().map(|(d, _)| d.clone()).chain(self.declared.values().cloned()).collect()
    }
}
