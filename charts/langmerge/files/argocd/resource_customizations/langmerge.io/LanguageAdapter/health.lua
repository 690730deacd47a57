-- Argo CD health of a langmerge.io LanguageAdapter, from the conditions the operator writes.
-- Deletion is gitops-engine's to report; the operator's conditions say everything else.
local hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no new runs start"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
if obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "the operator has not acted on the latest spec yet"
  return hs
end
local found = {}
for _, condition in ipairs(obj.status.conditions) do
  found[condition.type] = condition
end
local function is_true(kind)
  return found[kind] ~= nil and found[kind].status == "True"
end
if is_true("Failed") then
  hs.status = "Degraded"
  hs.message = found.Failed.message
  return hs
end
-- The cluster lacks what the spec needs (spec.resources.nodes > 1 without Kubeflow Trainer):
-- nothing progresses until someone installs it or changes the spec.
if found.Ready ~= nil and found.Ready.reason == "TrainerNotInstalled" then
  hs.status = "Degraded"
  hs.message = found.Ready.message
  return hs
end
if is_true("BudgetExceeded") then
  hs.status = "Degraded"
  hs.message = found.BudgetExceeded.message
  return hs
end
if is_true("Ready") and not is_true("Training") then
  hs.status = "Healthy"
  hs.message = found.Ready.message
  return hs
end
hs.status = "Progressing"
if found.Ready ~= nil and found.Ready.message ~= nil and found.Ready.message ~= "" then
  hs.message = found.Ready.message
else
  hs.message = "a training run is under way"
end
return hs
