//! Roles from the design contract, as carried by JWTs and API keys.

/// A role from the design contract; unknown role names in a credential are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages tenants; the only role whose tokens may lack a tenant.
    PlatformAdmin,
    /// Manages keys and retention of its tenant.
    TenantAdmin,
    /// Ingests events.
    Writer,
    /// Queries events.
    Reader,
}

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 4] = [Role::PlatformAdmin, Role::TenantAdmin, Role::Writer, Role::Reader];

    /// Parses a role name as it appears in credentials.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The role's name in credentials and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform_admin",
            Self::TenantAdmin => "tenant_admin",
            Self::Writer => "writer",
            Self::Reader => "reader",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unknown role {s:?} (known: platform_admin, tenant_admin, writer, reader)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_display_and_serialize_alike() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).expect("serializes"), format!("\"{role}\""));
        }
        assert_eq!(Role::parse("Writer"), None);
        assert!("root".parse::<Role>().is_err());
    }
}
