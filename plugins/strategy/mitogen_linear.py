"""The linear strategy run over Mitogen (ansible.cfg `strategy = mitogen_linear`).

Mitogen keeps one Python interpreter per host for the whole play and sends it each module, instead of an
AnsiballZ zip unpacked by a new Python per task: the same tasks and results, ~2.5 times less CPU on the host
(a no-op site.yml: 51 -> 21 CPU seconds, docs/PERFORMANCE.md). This is the proxy module Mitogen's own
ansible_mitogen/plugins/strategy/mitogen_linear.py is, found through the installed package instead of a
site-packages path in ansible.cfg.
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    pass
