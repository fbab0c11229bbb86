//! The host's handler registry: built-in and custom factories, registered the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use onex_core::contract::HandlerCatalogue;
use onex_spi::{Compute, HandlerDescriptor, HandlerFactory, HandlerRegistry, SpiError, SpiResult};

use crate::error::codes;

/// Handler factories by handler type.
#[derive(Default)]
pub struct Registry {
    factories: BTreeMap<String, (HandlerDescriptor, Arc<dyn HandlerFactory>)>,
    /// Descriptors known without a factory (built-ins whose handlers this build does not
    /// construct): they validate contracts, nothing more.
    declared: BTreeMap<String, HandlerDescriptor>,
    /// Handler names (`HandlerDb`) and the handler type answering to each.
    names: BTreeMap<String, String>,
    /// Compute nodes' logic by type.
    computes: BTreeMap<String, Arc<dyn Compute>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("factories", &self.factories.keys().collect::<Vec<_>>())
            .field("declared", &self.declared.keys().collect::<Vec<_>>())
            .field("names", &self.names)
            .field("computes", &self.computes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry that knows the built-in operation catalogue.
    /// The built-in handlers also answer to the names the Python runtime's handler contracts
    /// give the same jobs ([`crate::builtin::UPSTREAM_NAMES`]).
    pub fn with_builtin_catalogue() -> Self {
        let declared = crate::builtin::descriptors().into_iter().map(|d| (d.handler_type.clone(), d)).collect();
        let names = crate::builtin::UPSTREAM_NAMES.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        let computes = crate::compute::builtin()
            .into_iter()
            .map(|c| (c.describe().handler_type, c))
            .collect::<BTreeMap<String, Arc<dyn Compute>>>();
        Self { factories: BTreeMap::new(), declared, names, computes }
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
        registry.register(Arc::new(crate::handlers::KafkaHandlerFactory))?;
        registry.register(Arc::new(crate::handlers::KeycloakHandlerFactory))?;
        Ok(registry)
    }

    /// The factory for a handler type.
    pub fn factory(&self, handler_type: &str) -> Option<&Arc<dyn HandlerFactory>> {
        self.factories.get(handler_type).map(|(_, f)| f)
    }

    /// The compute logic registered under a type.
    pub fn compute(&self, compute_type: &str) -> Option<&Arc<dyn Compute>> {
        self.computes.get(compute_type)
    }
}

impl HandlerRegistry for Registry {
    fn register(&mut self, factory: Arc<dyn HandlerFactory>) -> SpiResult<()> {
        let descriptor = factory.descriptor();
        let ty = descriptor.handler_type.clone();
        if self.factories.contains_key(&ty) || self.computes.contains_key(&ty) {
            return Err(SpiError::new(codes::DUPLICATE_HANDLER, format!("handler type `{ty}` is already registered")));
        }
        self.declared.remove(&ty);
        self.factories.insert(ty, (descriptor, factory));
        Ok(())
    }

    fn provides(&self, operation: &str) -> bool {
        let Some((ty, _)) = operation.split_once('.') else { return false };
        let lists = |d: &HandlerDescriptor| d.operations.iter().any(|o| o.operation == operation);
        match self.factories.get(ty).map(|(d, _)| d).or_else(|| self.declared.get(ty)) {
            Some(descriptor) => lists(descriptor),
            None => self.computes.get(ty).is_some_and(|c| lists(&c.describe())),
        }
    }

    fn descriptors(&self) -> Vec<HandlerDescriptor> {
        let computes = self.computes.values().map(|c| c.describe());
        self.factories.values().map(|(d, _)| d.clone()).chain(self.declared.values().cloned()).chain(computes).collect()
    }

    fn register_compute(&mut self, compute: Arc<dyn Compute>) -> SpiResult<()> {
        let ty = compute.describe().handler_type;
        if self.factories.contains_key(&ty) || self.computes.contains_key(&ty) {
            return Err(SpiError::new(codes::DUPLICATE_HANDLER, format!("handler type `{ty}` is already registered")));
        }
        self.computes.insert(ty, compute);
        Ok(())
    }

    fn register_name(&mut self, name: &str, handler_type: &str) -> SpiResult<()> {
        match self.names.get(name) {
            Some(ty) if ty != handler_type => Err(SpiError::new(
                codes::DUPLICATE_HANDLER,
                format!("handler name `{name}` already answers to handler type `{ty}`"),
            )),
            _ => {
                self.names.insert(name.to_owned(), handler_type.to_owned());
                Ok(())
            }
        }
    }

    fn type_named(&self, name: &str) -> Option<String> {
        self.names.get(name).cloned()
    }
}

/// A registry seen as core's [`HandlerCatalogue`], for checking a contract set.
pub struct Catalogue<'r> {
    registry: &'r dyn HandlerRegistry,
    types: Vec<String>,
}

impl std::fmt::Debug for Catalogue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("types", &self.types).finish_non_exhaustive()
    }
}

impl<'r> Catalogue<'r> {
    /// The catalogue of `registry`.
    pub fn new(registry: &'r dyn HandlerRegistry) -> Self {
        let types = registry.descriptors().into_iter().map(|d| d.handler_type).collect();
        Self { registry, types }
    }
}

impl HandlerCatalogue for Catalogue<'_> {
    fn provides(&self, operation: &str) -> bool {
        self.registry.provides(operation)
    }

    fn has_type(&self, handler_type: &str) -> bool {
        self.types.iter().any(|t| t == handler_type)
    }

    fn has_name(&self, name: &str) -> bool {
        self.registry.type_named(name).is_some_and(|ty| self.has_type(&ty))
    }
}
