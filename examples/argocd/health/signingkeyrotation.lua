-- Argo CD health check for video.openclaw.io/SigningKeyRotation (Lua 5.1; Argo CD sets the global `obj`).
local hs = {}

-- Ready=False reasons that retrying will not fix (the operator's terminal reasons): the object needs a new
-- spec or new credentials. Every other Ready=False reason is a step on the way (Creating, a rotation
-- that failed and is retried, ...).
local TERMINAL_READY_REASONS = {
  Failed = true,
  Deleted = true,
  InvalidSpec = true,
  RejectedByTwilio = true,
  ProcessingTimeout = true,
  AuthFailed = true,
}

local function condition(status, conditionType)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  return message
end

local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}
local status = obj.status
local generation = metadata.generation

if annotations["video.openclaw.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "reconciliation is paused (annotation video.openclaw.io/paused)"
  return hs
end

if status == nil or (generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation)) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "waiting for the operator to report a status"
  end
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition(status, "Ready")
local rotating = condition(status, "Rotating")
local isRotating = rotating ~= nil and rotating.status == "True"

-- The active key keeps signing tokens while a new one is staged, so a rotation does not make a Ready
-- object unhealthy.
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if isRotating then
    hs.message = hs.message .. " (rotation in progress: " .. describe(rotating) .. ")"
  end
  return hs
end

if isRotating then
  hs.status = "Progressing"
  hs.message = "rotation in progress: " .. describe(rotating)
  return hs
end

if ready ~= nil and ready.status == "False" then
  if TERMINAL_READY_REASONS[ready.reason or ""] then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "waiting for the Ready condition"
return hs
