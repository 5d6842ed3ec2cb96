# Manila's upstream DummyDriver with one change, for the sharegw test lab:
# shares named after an export the lab's backend really serves get export
# locations on that backend, so a synced share is reachable through the
# gateway. Every other share keeps the dummy's fake locations.
#
# The map comes from the environment of manila-share (set by manila.sh):
#   SGWLAB_EXPORTS="acme=198.18.0.100,acme-private=198.18.0.100,beta=198.18.0.101"
# Share "acme" (NFS) -> 198.18.0.100:/export/acme (preferred)
# Share "acme" (CIFS) -> \\198.18.0.100\acme (preferred)
# plus, as the dummy does, one admin-only location (the share server's
# service IP) and one non-preferred location (SGWLAB_SECONDARY_HOST), so
# the client still sees is_admin_only and preferred at work.
import os

from manila.tests.share.drivers import dummy


def _lab_map():
    out = {}
    for item in os.environ.get("SGWLAB_EXPORTS", "").split(","):
        name, _, host = item.strip().partition("=")
        if name and host:
            out[name] = host
    return out


class SgwLabDummyDriver(dummy.DummyDriver):
    """DummyDriver whose locations point at the lab's real exports."""

    def _create_share(self, share, share_server=None):
        fake = super()._create_share(share, share_server=share_server)
        name = share["display_name"] or ""
        host = _lab_map().get(name)
        if host is None:
            return fake
        secondary = os.environ.get("SGWLAB_SECONDARY_HOST", "198.18.0.102")
        if share["share_proto"] == "CIFS":
            def loc(h):
                return "\\\\%s\\%s" % (h, name)
        else:
            def loc(h):
                return "%s:/export/%s" % (h, name)
        admin = [e for e in fake if e["is_admin_only"]]
        return admin + [
            {"path": loc(host), "metadata": {"preferred": True},
             "is_admin_only": False},
            {"path": loc(secondary), "metadata": {"preferred": False},
             "is_admin_only": False},
        ]

    def update_access(self, context, share, access_rules, add_rules,
                      delete_rules, share_server=None):
        # Real CIFS drivers (generic, NetApp, ...) take ip rules; the dummy
        # only takes user rules on CIFS. The gateway grants network access
        # by ip rules, so the lab accepts both on CIFS.
        for rule in add_rules + access_rules:
            proto = share["share_proto"].lower()
            kind = rule["access_type"].lower()
            if not ((proto == "nfs" and kind == "ip") or
                    (proto == "cifs" and kind in ("ip", "user"))):
                raise dummy.exception.InvalidShareAccess(
                    reason="Unsupported '%s' access type for '%s' share "
                           "protocol." % (kind, proto))
