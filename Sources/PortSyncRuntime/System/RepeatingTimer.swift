import Dispatch

extension DispatchSource {
    /// A started timer on `queue` that runs `handler` every `interval`, first after one interval.
    static func repeating(
        on queue: DispatchQueue, every interval: DispatchTimeInterval, leeway: DispatchTimeInterval = .milliseconds(20),
        handler: @escaping () -> Void
    ) -> any DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: leeway)
        timer.setEventHandler(handler: handler)
        timer.resume()
        return timer
    }
}
