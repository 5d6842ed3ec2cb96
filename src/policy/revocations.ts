import type { DesiredState, GuestState, NfsGrantPolicy, SmbGrantPolicy } from '../model/desired';

/** Why an established flow must be cut. Stable values (logs, counters). */
export type RevocationReason = 'guest-removed' | 'tunnel-changed' | 'source-changed' | 'grant-removed' | 'level-changed' | 'policy-changed';

/**
 * One (guest, backend, port) whose established flows must end: the rules
 * already refuse new connections; these are the ones the kernel's conntrack
 * or the proxy still carries.
 */
export interface Revocation {
  guestKey: string;
  /** The guest's tunnel address in the *previous* state: conntrack's original source. */
  guestIp: string;
  backend: string;
  port: number;
  reason: RevocationReason;
}

/**
 * What changed from `prev` (last applied) to `next` that takes access away.
 * Pure. A change of a guest's tunnel address or its domain's source IP cuts
 * all of its flows: they were admitted, and NATed, under the old identity.
 * A change of access level cuts too, so the new level applies on reconnect.
 * Grants that stay exactly as they were are never listed: reloads must not
 * disturb flows they did not change.
 */
export function revocations(prev: DesiredState | null, next: DesiredState): Revocation[] {
  if (prev === null) {
    return [];
  }
  const nextByKey = new Map(next.guests.map((g) => [g.key, g]));
  const out: Revocation[] = [];
  for (const old of prev.guests) {
    const cur = nextByKey.get(old.key);
    const whole = wholeGuestReason(old, cur);
    if (whole !== null) {
      out.push(...old.grants.map((gr) => ({ guestKey: old.key, guestIp: old.guestIp, backend: gr.backend, port: gr.port, reason: whole })));
      continue;
    }
    const now = new Map((cur?.grants ?? []).map((gr) => [`${gr.backend}:${gr.port}`, gr]));
    for (const gr of old.grants) {
      const n = now.get(`${gr.backend}:${gr.port}`);
      if (n === undefined) {
        out.push({ guestKey: old.key, guestIp: old.guestIp, backend: gr.backend, port: gr.port, reason: 'grant-removed' });
      } else if (n.level !== gr.level) {
        out.push({ guestKey: old.key, guestIp: old.guestIp, backend: gr.backend, port: gr.port, reason: 'level-changed' });
      } else if (!sameSmbPolicy(gr.smb, n.smb) || !sameNfsPolicy(gr.nfs, n.nfs)) {
        // Sessions were admitted under the old SMB policy (floor, encryption,
        // shares) or NFS policy (ro, identity map).
        out.push({ guestKey: old.key, guestIp: old.guestIp, backend: gr.backend, port: gr.port, reason: 'policy-changed' });
      }
    }
  }
  return out;
}

/**
 * ro and the identity policy are fixed for a session's life; the export list
 * is not compared: the proxy reads it live, so a share added or removed on a
 * backend changes what new LOOKUPs and MOUNTs may reach without cutting the
 * connections other shares use.
 */
function sameNfsPolicy(a: NfsGrantPolicy | undefined, b: NfsGrantPolicy | undefined): boolean {
  if (a === undefined || b === undefined) {
    return a === b;
  }
  return a.readOnly === b.readOnly && JSON.stringify(a.identity) === JSON.stringify(b.identity);
}

function sameSmbPolicy(a: SmbGrantPolicy | undefined, b: SmbGrantPolicy | undefined): boolean {
  if (a === undefined || b === undefined) {
    return a === b;
  }
  // steer moves the grant between planes: its flows were admitted by the other one.
  return a.minDialect === b.minDialect && a.encryptionRequired === b.encryptionRequired && a.steer === b.steer && a.shares.join('\n') === b.shares.join('\n');
}

function wholeGuestReason(old: GuestState, cur: GuestState | undefined): RevocationReason | null {
  if (cur === undefined) {
    return 'guest-removed';
  }
  if (cur.guestIp !== old.guestIp || cur.iface !== old.iface) {
    return 'tunnel-changed';
  }
  if (cur.sourceIp !== old.sourceIp) {
    return 'source-changed';
  }
  return null;
}
