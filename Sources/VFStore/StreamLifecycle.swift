import VFCore

/// What happens around a stream's stored state changing: the one place a worker runtime hooks in
/// (start a worker on activate, stop it on deactivate/delete, restart it on a settings change).
/// Called on a database pool thread after the change is committed; implementations must not block
/// for long, and must not throw: the stored state is the truth, reconciled later if a hook fails.
public protocol StreamLifecycle: Sendable {
    func streamCreated(_ stream: CameraStream)
    func streamUpdated(_ stream: CameraStream, previous: CameraStream)
    func streamActivated(_ stream: CameraStream)
    func streamDeactivated(_ stream: CameraStream)
    func streamDeleted(_ stream: CameraStream)
}

/// The lifecycle of the API before worker runtimes are wired: the stored state is all there is.
public struct StoredStateOnlyLifecycle: StreamLifecycle {
    public init() {}
    public func streamCreated(_ stream: CameraStream) {}
    public func streamUpdated(_ stream: CameraStream, previous: CameraStream) {}
    public func streamActivated(_ stream: CameraStream) {}
    public func streamDeactivated(_ stream: CameraStream) {}
    public func streamDeleted(_ stream: CameraStream) {}
}
