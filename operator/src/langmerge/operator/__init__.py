"""langmerge operator: CRD models, planner, cost model, kopf handlers, local runner."""
