use std::future::Future;

use burrow_identity::{InstanceId, OrgId, SandboxId, UserId};

use crate::error::RegistryError;
use crate::model::{InstanceRow, MarkOutcome, NewInstance, Organization};

/// The registry of organisations and instances. Two implementations pass one test suite:
/// [`PgRegistry`](crate::PgRegistry) and [`SqliteRegistry`](crate::SqliteRegistry) (the
/// default when no PostgreSQL URL is configured); [`AnyRegistry`](crate::AnyRegistry) holds
/// either. Destroyed rows are never deleted.
pub trait Registry: Send + Sync {
    /// Creates an organisation (idempotent for the same id and name).
    fn create_organization(
        &self,
        id: OrgId,
        name: &str,
    ) -> impl Future<Output = Result<Organization, RegistryError>> + Send;

    /// Creates an instance row. Idempotent for the same id and contents; a different row with
    /// the id, or a second active row of the user with the sandbox id, is a conflict; an
    /// unknown organisation is [`RegistryError::UnknownOrganization`]. An instance-keyed row's
    /// sandbox id must be `ki_` + its id, a legacy row's its user's legacy sandbox id.
    fn create_instance(
        &self,
        new: &NewInstance,
    ) -> impl Future<Output = Result<InstanceRow, RegistryError>> + Send;

    /// The row with this id, active or destroyed.
    fn get(
        &self,
        id: InstanceId,
    ) -> impl Future<Output = Result<Option<InstanceRow>, RegistryError>> + Send;

    /// The row with this sandbox id: the active one if there is one, else the most recently
    /// created.
    fn get_by_sandbox(
        &self,
        sandbox_id: &SandboxId,
    ) -> impl Future<Output = Result<Option<InstanceRow>, RegistryError>> + Send;

    /// The user's oldest active personal (organisation-less) instance: the legacy lookup.
    fn personal_instance(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<InstanceRow>, RegistryError>> + Send;

    /// Up to `limit` active instances of the user, in id order, after `after`.
    fn list_by_user(
        &self,
        user_id: &UserId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<InstanceRow>, RegistryError>> + Send;

    /// Up to `limit` active instances of the organisation, in id order, after `after`.
    fn list_by_org(
        &self,
        org_id: OrgId,
        after: Option<InstanceId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<InstanceRow>, RegistryError>> + Send;

    /// Marks a row destroyed; says whether it was active, already destroyed, or absent.
    fn mark_destroyed(
        &self,
        id: InstanceId,
    ) -> impl Future<Output = Result<MarkOutcome, RegistryError>> + Send;

    /// Makes a destroyed row active again (when the actor refused a destroy after the row was
    /// marked); returns whether a destroyed row was found.
    fn undo_destroy(
        &self,
        id: InstanceId,
    ) -> impl Future<Output = Result<bool, RegistryError>> + Send;

    /// Answers when the registry can be read (its instances table, through the same pool
    /// and timeout as every operation): what a readiness check asks.
    fn ping(&self) -> impl Future<Output = Result<(), RegistryError>> + Send;
}
