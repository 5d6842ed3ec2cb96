import { z } from 'zod';

/**
 * Shapes of the two kinds of configuration file. Objects are strict:
 * an unknown key is an error (a typo must never silently disable policy).
 * Values that need more than a shape check (addresses, prefixes, export
 * locations, cross-file uniqueness) are checked in validate.ts, where the
 * error can say exactly what is wrong.
 */

const nonEmpty = z.string().min(1, 'must not be empty');
const duration = z.union([z.string(), z.number()]);

/** Keystone v3 credentials, or noauth for labs (`X-Auth-Token: user:project`). */
export const manilaAuthSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('password'),
    username: nonEmpty,
    password: nonEmpty,
    /** Project name to scope the token to (or projectId). */
    project: nonEmpty.optional(),
    projectId: nonEmpty.optional(),
    /** Domain name of the user and the project (default `Default`). */
    domain: nonEmpty.optional(),
    userDomain: nonEmpty.optional(),
    projectDomain: nonEmpty.optional(),
  }),
  z.strictObject({ type: z.literal('applicationCredential'), id: nonEmpty, secret: nonEmpty }),
  z.strictObject({ type: z.literal('noauth'), user: nonEmpty.default('admin'), project: nonEmpty }),
]);

/** The `manila:` block: where shares, rules and share networks come from. */
export const manilaSchema = z.strictObject({
  /** A clouds.yaml entry; the explicit keys below override its values. */
  cloud: nonEmpty.optional(),
  authUrl: nonEmpty.optional(),
  auth: manilaAuthSchema.optional(),
  /** Overrides the service catalog (`sharev2`); required with noauth. */
  endpoint: nonEmpty.optional(),
  interface: z.enum(['public', 'internal', 'admin']).optional(),
  region: nonEmpty.optional(),
  /** PEM bundle of the CAs to trust for Keystone and Manila (default: Node's). */
  caFile: nonEmpty.optional(),
  /** One HTTP request, connect to last byte. */
  timeout: duration.optional(),
  /** Longest time between two full syncs. */
  interval: duration.optional(),
  /** Shortest time between two syncs (notifications and requests are coalesced). */
  minInterval: duration.optional(),
  /** RabbitMQ URL of Manila's notifications (hints for an early resync). */
  notifications: nonEmpty.optional(),
  /** Exchange Manila publishes notifications on: oslo.messaging's control_exchange (default `openstack`). */
  notificationsExchange: nonEmpty.optional(),
});

/** The daemon file (`sharegwd.yaml`). */
export const daemonFileSchema = z.strictObject({
  node: nonEmpty,
  dataplane: z.enum(['kernel', 'proxy']).default('kernel'),
  domainsDir: nonEmpty.default('domains.d'),
  stateDir: nonEmpty.default('/var/lib/sharegw'),
  adminSocket: nonEmpty.default('/run/sharegw/admin.sock'),
  metrics: z.union([nonEmpty, z.literal(false), z.null()]).optional(),
  syncInterval: duration.optional(),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') }).optional(),
  /** Per-domain egress (ADR 0011): routing tables, rule priority. */
  egress: z
    .strictObject({
      /** Tables (and conntrack zones) allocated to domains without an explicit table, "FROM-TO". */
      tables: z.string().optional(),
      /** Priority of every policy rule sharegw installs. */
      rulePriority: z.number().int().min(1).max(32765).optional(),
    })
    .optional(),
  kernel: z
    .strictObject({
      /** Keep rules when the daemon exits so that flows survive restarts. */
      keepRulesOnExit: z.boolean().default(true),
    })
    .optional(),
  manila: manilaSchema.optional(),
  /**
   * Connection caps that hold in both data planes, so one domain cannot
   * take a shared backend's every connection (nfs-ganesha allows 1024).
   */
  limits: z
    .strictObject({
      /** Live connections to one backend address:port, all domains together. */
      maxConnectionsPerBackend: z.number().int().min(1).max(65535).optional(),
      /** Live connections of one domain's guests to one backend address:port. */
      maxConnectionsPerDomainPerBackend: z.number().int().min(1).max(65535).optional(),
    })
    .optional(),
  proxy: z
    .strictObject({
      portRange: z.string().optional(),
      connectTimeout: duration.optional(),
      idleTimeout: duration.optional(),
      keepAlive: duration.optional(),
      userTimeout: duration.optional(),
      drainTimeout: duration.optional(),
      maxConnectionsPerGuest: z.number().int().min(1).max(65535).optional(),
      /** Bytes one protocol-aware connection may hold before its guest is no longer read (e.g. 4MiB). */
      connectionBudget: z.union([z.string(), z.number()]).optional(),
      /** Bytes all proxied connections may hold together before load is shed (e.g. 512MiB). */
      memoryBudget: z.union([z.string(), z.number()]).optional(),
    })
    .optional(),
});

/** Each guest and share is checked on its own so one bad entry does not hide the others' problems. */
export const domainTopSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'must be 1-63 chars of a-z 0-9 _ . - starting alphanumeric'),
  project: nonEmpty,
  shareNetwork: nonEmpty.optional(),
  /** Identity policy for AUTH_SYS calls to the domain's NFS shares (enforced by the proxy). */
  nfs: z
    .strictObject({
      /** uid/gid 0 become anonUid/anonGid (default true once an nfs block is given). */
      rootSquash: z.boolean().optional(),
      anonUid: z.number().int().min(0).max(0xffffffff).optional(),
      anonGid: z.number().int().min(0).max(0xffffffff).optional(),
      /** Allowed uid and gid ranges, "FROM-TO" or a single id; calls outside are refused. */
      uids: z.array(z.union([z.string(), z.number().int().min(0)])).optional(),
      gids: z.array(z.union([z.string(), z.number().int().min(0)])).optional(),
      /**
       * Offset map: guest uid/gid N is backend id N + idOffset (guest ids
       * 0-65535; a multiple of 65536 keeps windows aligned, any value
       * >= 65536 works). Domains on one host must not overlap.
       */
      idOffset: z.number().int().min(65536).max(0xffffffff - 65535).optional(),
    })
    .optional(),
  /** SMB policy of the domain's CIFS shares (enforced by the proxy). */
  smb: z
    .strictObject({
      /** Lowest SMB dialect a guest may negotiate (default 3.0); SMB1 is always refused. */
      minDialect: z.enum(['2.0.2', '2.1', '3.0', '3.0.2', '3.1.1']).optional(),
    })
    .optional(),
  sourceIp: nonEmpty,
  /**
   * The domain's own way to its backends (ADR 0011): routes in a table of
   * its own through this interface (and next hop), a conntrack zone of its
   * own. Without it the host's routing applies.
   */
  egress: z
    .strictObject({
      interface: nonEmpty,
      via: nonEmpty.optional(),
      /** Routing table and conntrack zone number; allocated from the daemon's range when absent. */
      table: z.number().int().min(1).max(65535).optional(),
    })
    .optional(),
  guests: z.array(z.unknown()).default([]),
  shares: z.array(z.unknown()).default([]),
});

const tunnelSchema = z.strictObject({
  interface: nonEmpty,
  guestIp: nonEmpty,
  gatewayIp: nonEmpty,
});

export const guestSchema = z.strictObject({
  instance: nonEmpty,
  tunnel: tunnelSchema,
  addresses: z.array(nonEmpty).min(1, 'a guest needs at least one tenant address'),
});

export const accessRuleSchema = z.strictObject({
  accessType: z.enum(['ip', 'user', 'cert', 'cephx']),
  accessTo: nonEmpty,
  accessLevel: z.enum(['rw', 'ro']),
});

export const shareSchema = z.strictObject({
  id: nonEmpty,
  name: nonEmpty.optional(),
  proto: z.enum(['NFS', 'CIFS']),
  exportLocations: z.array(nonEmpty).min(1, 'a share needs at least one export location'),
  accessRules: z.array(z.unknown()).default([]),
  /** NFSv3 needs the portmapper (111) and mountd too. */
  nfsv3: z.boolean().optional(),
  mountdPort: z.number().int().min(1).max(65535).optional(),
  /** CIFS: `required` closes any session whose traffic after session setup is not SMB3-encrypted. */
  encryption: z.enum(['required', 'optional']).optional(),
});


export type ManilaFile = z.output<typeof manilaSchema>;
export type DaemonFile = z.output<typeof daemonFileSchema>;
export type DomainTop = z.output<typeof domainTopSchema>;
export type GuestFile = z.output<typeof guestSchema>;
export type ShareFile = z.output<typeof shareSchema>;
export type AccessRuleFile = z.output<typeof accessRuleSchema>;
