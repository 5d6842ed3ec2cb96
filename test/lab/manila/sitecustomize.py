# Lab-only fix, loaded through PYTHONPATH by the manila processes manila.sh
# starts (never installed system-wide).
#
# Debian 12's python3-oslo.messaging 14.0.3-0+deb12u1 sanitizes the request
# context of every notification by rebuilding it from a filtered dict that
# has no "read_deleted"; manila's RequestContext.from_dict passes None on,
# which its setter refuses (ValueError). With notifications enabled, every
# call that notifies then fails with HTTP 500. Default the value as the
# constructor does.
import importlib.abc
import importlib.machinery
import sys


class _FixContext(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "manila.context":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        inner = spec.loader.exec_module

        def exec_module(module):
            inner(module)
            cls = module.RequestContext
            orig = cls.from_dict.__func__

            def from_dict(klass, values):
                values = dict(values)
                if values.get("read_deleted") is None:
                    values["read_deleted"] = "no"
                return orig(klass, values)

            cls.from_dict = classmethod(from_dict)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _FixContext())
