import VFCore

/// Told after every committed change of what should run (a stream created, changed, activated,
/// deactivated or deleted). The one implementation asks the reconciler for a pass, which compares
/// the whole desired state with the running workers: what changed needs no detail. Called on a
/// database pool thread; it must not block for long and cannot fail: the stored state is the
/// truth, reconciled later whatever happens here.
public protocol DesiredStateObserver: Sendable {
    func desiredStateChanged()
}

/// No runtime wired: the stored state is all there is.
public struct NoDesiredStateObserver: DesiredStateObserver {
    public init() {}
    public func desiredStateChanged() {}
}
