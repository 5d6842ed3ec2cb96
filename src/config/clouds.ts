import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';

/**
 * clouds.yaml, as every OpenStack tool reads it (openstacksdk's
 * os-client-config): the file named by OS_CLIENT_CONFIG_FILE, else the
 * first of ./clouds.yaml, ~/.config/openstack/clouds.yaml,
 * /etc/openstack/clouds.yaml that exists. Only the keys the control module
 * uses are read; unknown keys are ignored (the file is shared with other
 * tools). secure.yaml is not merged.
 */

/** Candidate paths in search order. Pure: the caller checks which exists. */
export function cloudsSearchPath(env: NodeJS.ProcessEnv, cwd: string, home: string = os.homedir()): string[] {
  const explicit = env['OS_CLIENT_CONFIG_FILE'];
  if (explicit !== undefined && explicit !== '') {
    return [path.resolve(cwd, explicit)];
  }
  return [path.join(cwd, 'clouds.yaml'), path.join(home, '.config', 'openstack', 'clouds.yaml'), '/etc/openstack/clouds.yaml'];
}

const str = z.string().min(1);

/** One cloud entry; loose on purpose (other tools' keys are not ours to judge). */
export const cloudEntrySchema = z.looseObject({
  auth_type: str.optional(),
  auth: z
    .looseObject({
      auth_url: str.optional(),
      username: str.optional(),
      password: str.optional(),
      project_name: str.optional(),
      project_id: str.optional(),
      user_domain_name: str.optional(),
      user_domain_id: str.optional(),
      project_domain_name: str.optional(),
      project_domain_id: str.optional(),
      domain_name: str.optional(),
      application_credential_id: str.optional(),
      application_credential_secret: str.optional(),
    })
    .optional(),
  region_name: str.optional(),
  interface: z.enum(['public', 'internal', 'admin']).optional(),
  cacert: str.optional(),
  /** Some tools write `endpoint_type` for the interface. */
  endpoint_type: str.optional(),
  /** Per-service endpoint override (`sharev2_endpoint_override`, `share_endpoint_override`). */
  sharev2_endpoint_override: str.optional(),
});

export type CloudEntry = z.output<typeof cloudEntrySchema>;

/**
 * The named cloud of a parsed clouds.yaml document, or a message saying
 * what is wrong (never quoting a value: the file holds passwords).
 */
export function findCloud(doc: unknown, name: string): CloudEntry | string {
  const clouds = (doc as { clouds?: unknown } | null)?.clouds;
  if (clouds === null || typeof clouds !== 'object') {
    return 'has no "clouds" mapping';
  }
  const entry = (clouds as Record<string, unknown>)[name];
  if (entry === undefined) {
    const names = Object.keys(clouds).slice(0, 10);
    return `has no cloud "${name}" (it has: ${names.length > 0 ? names.join(', ') : 'none'})`;
  }
  const r = cloudEntrySchema.safeParse(entry);
  if (!r.success) {
    const i = r.error.issues[0];
    return `cloud "${name}": ${i === undefined ? 'invalid' : `${i.path.map(String).join('.')}: ${i.message}`}`;
  }
  return r.data;
}
