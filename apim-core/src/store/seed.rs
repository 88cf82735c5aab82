//! First-start data: default tiers (DESIGN §5), the default gateway environment, the admin user.

use super::Store;
use crate::event::Policy;
use crate::model::{
    roles, AdvancedPolicy, ApplicationPolicy, Environment, SubscriptionPolicy, ThrottleLimit,
    TimeUnit, Vhost, UNLIMITED_COUNT,
};
use crate::ApimError;

/// What [`Store::seed_defaults`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Policies created (0 when they existed).
    pub policies_created: usize,
    /// The admin password, when it was generated now (print it once; it is not stored).
    pub generated_admin_password: Option<String>,
    /// Whether the admin user was created now.
    pub admin_created: bool,
}

fn sub(name: &str, per_min: u64, desc: &str) -> Policy {
    Policy::Subscription(SubscriptionPolicy {
        policy_id: String::new(),
        policy_name: name.into(),
        display_name: Some(name.into()),
        description: Some(desc.into()),
        default_limit: ThrottleLimit::requests(per_min, TimeUnit::Min, 1),
        rate_limit_count: 0,
        rate_limit_time_unit: None,
        stop_on_quota_reach: true,
        billing_plan: "FREE".into(),
    })
}

fn app(name: &str, per_min: u64) -> Policy {
    Policy::Application(ApplicationPolicy {
        policy_id: String::new(),
        policy_name: name.into(),
        display_name: Some(name.into()),
        description: Some(format!("Allows {per_min} requests per minute")),
        default_limit: ThrottleLimit::requests(per_min, TimeUnit::Min, 1),
    })
}

fn adv(name: &str, per_min: u64) -> Policy {
    Policy::Advanced(AdvancedPolicy {
        policy_id: String::new(),
        policy_name: name.into(),
        display_name: Some(name.into()),
        description: Some(format!("Allows {per_min} requests per minute")),
        default_limit: ThrottleLimit::requests(per_min, TimeUnit::Min, 1),
        conditional_groups: vec![],
    })
}

/// The default tiers of DESIGN §5.
pub fn default_policies() -> Vec<Policy> {
    vec![
        sub("Gold", 5000, "Allows 5000 requests per minute"),
        sub("Silver", 2000, "Allows 2000 requests per minute"),
        sub("Bronze", 1000, "Allows 1000 requests per minute"),
        sub("Unauthenticated", 500, "Allows 500 requests per minute"),
        sub("Unlimited", UNLIMITED_COUNT, "Allows unlimited requests"),
        app("10PerMin", 10),
        app("20PerMin", 20),
        app("50PerMin", 50),
        app("Unlimited", UNLIMITED_COUNT),
        adv("10KPerMin", 10_000),
        adv("20KPerMin", 20_000),
        adv("50KPerMin", 50_000),
        adv("Unlimited", UNLIMITED_COUNT),
    ]
}

impl Store {
    /// Seeds default tiers, the `Default` environment, the built-in roles and the admin user
    /// (`admin` with `admin_password`, or a generated one reported once). Idempotent.
    pub async fn seed_defaults(
        &self,
        admin_password: Option<&str>,
    ) -> Result<SeedReport, ApimError> {
        self.seed_defaults_as("admin", admin_password).await
    }

    /// [`Store::seed_defaults`] with another admin user name.
    pub async fn seed_defaults_as(
        &self,
        admin: &str,
        admin_password: Option<&str>,
    ) -> Result<SeedReport, ApimError> {
        let mut created = 0;
        for p in default_policies() {
            if self.get_policy_by_name(p.kind(), p.name()).await?.is_none() {
                match self.create_policy(p).await {
                    Ok(_) => created += 1,
                    Err(ApimError::Conflict(_)) => {} // another instance seeded it concurrently
                    Err(e) => return Err(e),
                }
            }
        }
        if !self
            .list_environments()
            .await?
            .iter()
            .any(|e| e.name == "Default")
        {
            let env = Environment {
                id: String::new(),
                name: "Default".into(),
                display_name: Some("Default".into()),
                description: Some("The default gateway environment".into()),
                vhosts: vec![Vhost {
                    host: "localhost".into(),
                    http_port: 8280,
                    https_port: 8243,
                }],
            };
            match self.create_environment(env).await {
                Ok(_) | Err(ApimError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for r in roles::ALL {
            self.create_role(r).await?;
        }
        let mut report = SeedReport {
            policies_created: created,
            generated_admin_password: None,
            admin_created: false,
        };
        if self.get_user(admin).await?.is_none() {
            let password = match admin_password {
                Some(p) => p.to_owned(),
                None => {
                    let p = crate::crypto::random_secret()?;
                    report.generated_admin_password = Some(p.clone());
                    p
                }
            };
            match self
                .create_user(admin, &password, &[roles::ADMIN.to_owned()], None)
                .await
            {
                Ok(_) => report.admin_created = true,
                Err(ApimError::Conflict(_)) => report.generated_admin_password = None,
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
