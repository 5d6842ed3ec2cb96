import * as path from 'node:path';
import type { ConfigProblem } from '../../errors';
import type { ManilaAuth, ManilaSettings } from '../../model/config';
import { findCloud } from '../clouds';
import type { ManilaFile } from '../schema';
import { Secret } from '../secret';
import { parseYaml } from '../yaml-source';
import type { SourceText, YamlSource } from '../yaml-source';
import { durations } from './part';

/**
 * The `manila:` block with its clouds.yaml entry merged in (explicit keys
 * win). Problems never quote a credential: they name the key only.
 */
export function checkManila(m: ManilaFile, src: YamlSource, out: ConfigProblem[], clouds: SourceText | null): ManilaSettings | null {
  const before = out.length;
  const dur = durations(src, out);
  const at = (key: string): string[] => ['manila', key];
  let cloud: ManilaSettings['cloud'] = null;
  let entry: Exclude<ReturnType<typeof findCloud>, string> | null = null;
  if (m.cloud !== undefined) {
    if (clouds === null) {
      out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud}": no clouds.yaml found (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)`));
    } else {
      const doc = parseYaml(clouds.file, clouds.text);
      const found = doc.problems.length > 0 ? `is not valid YAML (line ${doc.problems[0]?.line ?? '?'})` : findCloud(doc.value, m.cloud);
      if (typeof found === 'string') {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `${clouds.file} ${found}`));
      } else {
        entry = found;
        cloud = { name: m.cloud, file: clouds.file };
      }
    }
  }
  const ca = entry?.auth;
  let auth: ManilaAuth | null = null;
  if (m.auth !== undefined) {
    const a = m.auth;
    if (a.type === 'password') {
      if ((a.project === undefined) === (a.projectId === undefined)) {
        out.push(src.problem(['manila', 'auth'], 'SGW_ERR_CONFIG_SCHEMA', 'password auth needs exactly one of project (a name) or projectId'));
      }
      const domain = a.domain ?? 'Default';
      auth = {
        type: 'password',
        username: a.username,
        password: new Secret(a.password),
        project: a.projectId !== undefined ? { id: a.projectId } : { name: a.project ?? '', domain: a.projectDomain ?? domain },
        userDomain: a.userDomain ?? domain,
      };
    } else if (a.type === 'applicationCredential') {
      auth = { type: 'applicationCredential', id: a.id, secret: new Secret(a.secret) };
    } else {
      if (!/^[0-9a-fA-F-]{1,64}$/.test(a.project)) {
        out.push(src.problem(['manila', 'auth', 'project'], 'SGW_ERR_CONFIG_SCHEMA', 'a noauth project must be a hex project id (Manila refuses other ids in URLs)'));
      }
      auth = { type: 'noauth', user: a.user, project: a.project };
    }
  } else if (ca !== undefined) {
    const authType = entry?.auth_type ?? (ca.application_credential_id !== undefined ? 'v3applicationcredential' : 'password');
    if (authType === 'v3applicationcredential' || authType === 'applicationcredential') {
      if (ca.application_credential_id === undefined || ca.application_credential_secret === undefined) {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": application credential auth needs auth.application_credential_id and auth.application_credential_secret`));
      } else {
        auth = { type: 'applicationCredential', id: ca.application_credential_id, secret: new Secret(ca.application_credential_secret) };
      }
    } else if (authType === 'password' || authType === 'v3password') {
      const domain = ca.domain_name ?? 'Default';
      if (ca.username === undefined || ca.password === undefined || (ca.project_name === undefined && ca.project_id === undefined)) {
        out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": password auth needs auth.username, auth.password and auth.project_name or auth.project_id`));
      } else {
        auth = {
          type: 'password',
          username: ca.username,
          password: new Secret(ca.password),
          project: ca.project_id !== undefined ? { id: ca.project_id } : { name: ca.project_name ?? '', domain: ca.project_domain_name ?? ca.project_domain_id ?? domain },
          userDomain: ca.user_domain_name ?? ca.user_domain_id ?? domain,
        };
      }
    } else {
      out.push(src.problem(at('cloud'), 'SGW_ERR_CONFIG_CLOUD', `cloud "${m.cloud ?? ''}": auth_type "${authType}" is not supported (password, v3password, v3applicationcredential)`));
    }
  } else if (m.cloud === undefined) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'required key "auth" is missing (or name a clouds.yaml entry with "cloud")'));
  }
  const url = (v: string | undefined, key: string, schemes: string[]): string | null => {
    if (v === undefined) {
      return null;
    }
    try {
      const u = new URL(v);
      if (!schemes.includes(u.protocol)) {
        out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', `must be a ${schemes.map((x) => x.replace(':', '')).join(' or ')} URL`));
        return null;
      }
      if ((u.protocol === 'http:' || u.protocol === 'https:') && (u.username !== '' || u.password !== '')) {
        // Status shows these URLs; credentials belong in `auth`.
        out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', 'must not carry a user or password (put credentials in "auth")'));
        return null;
      }
      return v;
    } catch {
      // The URL may carry a password: say what is wrong without quoting it.
      out.push(src.problem(at(key), 'SGW_ERR_CONFIG_BAD_URL', 'is not a URL'));
      return null;
    }
  };
  const authUrl = url(m.authUrl ?? ca?.auth_url, 'authUrl', ['http:', 'https:']);
  const endpoint = url(m.endpoint ?? entry?.sharev2_endpoint_override, 'endpoint', ['http:', 'https:']);
  const amqp = url(m.notifications, 'notifications', ['amqp:', 'amqps:']);
  if (auth !== null && auth.type !== 'noauth' && authUrl === null && out.length === before) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'required key "authUrl" is missing (Keystone v3, e.g. https://keystone.example:5000/v3)'));
  }
  if (auth?.type === 'noauth' && endpoint === null && out.length === before) {
    out.push(src.problem(['manila'], 'SGW_ERR_CONFIG_SCHEMA', 'noauth has no service catalog: set "endpoint" (e.g. http://127.0.0.1:18786/v2)'));
  }
  const intervalMs = dur(m.interval, at('interval'), 10_000, 1000);
  const minIntervalMs = dur(m.minInterval, at('minInterval'), 1000, 100);
  if (minIntervalMs > intervalMs) {
    out.push(src.problem(at('minInterval'), 'SGW_ERR_CONFIG_BAD_DURATION', 'must not be longer than interval'));
  }
  const ifaceRaw = m.interface ?? entry?.interface ?? entry?.endpoint_type?.replace(/URL$/, '');
  const iface = ifaceRaw === 'internal' || ifaceRaw === 'admin' ? ifaceRaw : 'public';
  const caFile = m.caFile ?? entry?.cacert;
  const settings: ManilaSettings | null =
    auth === null
      ? null
      : {
          cloud,
          authUrl: auth.type === 'noauth' ? null : authUrl,
          auth,
          endpoint,
          interface: iface,
          region: m.region ?? entry?.region_name ?? null,
          caFile: caFile === undefined ? null : path.resolve(path.dirname(src.file), caFile),
          timeoutMs: dur(m.timeout, at('timeout'), 10_000, 100),
          intervalMs,
          minIntervalMs,
          notifications: amqp === null ? null : new Secret(amqp),
          notificationsExchange: m.notificationsExchange ?? 'openstack',
        };
  return out.length === before ? settings : null;
}
