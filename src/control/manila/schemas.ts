import { z } from 'zod';

/**
 * Shapes of the Manila and Keystone answers the control module reads
 * (Manila API reference, checked against the lab's Zed server). Objects
 * strip unknown keys: servers add fields with new microversions, and a
 * field we do not read (a security service's `password`) must not travel
 * further than the parser. Only what we use is required.
 */

const id = z.string().min(1);
const nullableString = z.string().nullable().optional();

/** GET /v2/ (and GET / lists every version). */
export const versionsSchema = z.object({
  versions: z
    .array(
      z.object({
        id: z.string(),
        status: z.string(),
        /** Highest microversion ("" for v1). */
        version: z.string(),
        min_version: z.string(),
      }),
    )
    .min(1),
});

export const shareNetworkSchema = z.object({
  id,
  name: nullableString,
  project_id: z.string(),
  updated_at: nullableString,
  /** 2.63+: active | network_change | error. */
  status: z.string().optional(),
  security_service_update_support: z.boolean().nullable().optional(),
  /** 2.51+. */
  share_network_subnets: z
    .array(
      z.object({
        id,
        availability_zone: nullableString,
        cidr: nullableString,
        segmentation_id: z.number().nullable().optional(),
        network_type: nullableString,
        gateway: nullableString,
      }),
    )
    .default([]),
});
export const shareNetworkEnvelope = z.object({ share_network: shareNetworkSchema });

/** No `password`: stripped here, so it cannot reach state, logs or status. */
export const securityServiceSchema = z.object({
  id,
  type: z.string(),
  name: nullableString,
  status: nullableString,
  dns_ip: nullableString,
  server: nullableString,
  domain: nullableString,
  user: nullableString,
  ou: nullableString,
  updated_at: nullableString,
});
export const securityServicesEnvelope = z.object({ security_services: z.array(securityServiceSchema) });

export const shareSchema = z.object({
  id,
  name: nullableString,
  status: z.string(),
  share_proto: z.string(),
  share_network_id: nullableString,
  project_id: z.string(),
  updated_at: nullableString,
  created_at: nullableString,
  access_rules_status: nullableString,
  /** 2.90+: the share is encrypted at rest with this key; we also require an encrypted transport. */
  encryption_key_ref: nullableString,
});
export const sharesEnvelope = z.object({
  shares: z.array(shareSchema),
  shares_links: z.array(z.object({ rel: z.string(), href: z.string() })).optional(),
});

export const exportLocationSchema = z.object({
  id,
  path: z.string().min(1),
  preferred: z.boolean().optional(),
  /** Admins only; other users never see admin-only locations at all. */
  is_admin_only: z.boolean().optional(),
});
export const exportLocationsEnvelope = z.object({ export_locations: z.array(exportLocationSchema) });

export const accessRuleSchema = z.object({
  id,
  access_type: z.string(),
  access_to: z.string(),
  access_level: z.string(),
  state: z.string(),
});
/** GET /share-access-rules?share_id= (2.45+) answers `access_list`. */
export const accessRulesEnvelope = z.object({ access_list: z.array(accessRuleSchema) });

/** POST /v3/auth/tokens (the token itself is the X-Subject-Token header). */
export const tokenSchema = z.object({
  token: z.object({
    expires_at: z.string(),
    project: z.object({ id, name: z.string().optional() }).optional(),
    catalog: z
      .array(
        z.object({
          type: z.string(),
          endpoints: z.array(z.object({ interface: z.string(), url: z.string(), region: z.string().nullable().optional(), region_id: z.string().nullable().optional() })),
        }),
      )
      .default([]),
  }),
});

export type ShareNetwork = z.output<typeof shareNetworkSchema>;
export type SecurityService = z.output<typeof securityServiceSchema>;
export type ManilaShare = z.output<typeof shareSchema>;
export type ExportLocationRecord = z.output<typeof exportLocationSchema>;
export type AccessRuleRecord = z.output<typeof accessRuleSchema>;
export type TokenBody = z.output<typeof tokenSchema>;
