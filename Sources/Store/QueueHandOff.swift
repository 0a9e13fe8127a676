/// How the writer takes its batch from the queue the loops append to (under `cond`'s lock).
///
/// Taking the whole queue swaps arrays: the loops go on appending into the storage the writer handed
/// back after its previous batch (already grown to a batch's size, so appends do not reallocate it on the
/// loop's thread), and nothing is copied or retained under the lock. Copying the first `take` requests out
/// and shifting the rest (what this replaced) retained every request's payload while the loops waited for
/// the lock, and regrew the queue's storage from empty after every batch.
extension SQLiteStore {
    /// Removes and returns the first `take` requests (1 ≤ take ≤ queue.count). Under `cond`'s lock.
    func takeBatch(_ take: Int) -> [Request] {
        guard take == queue.count else {
            let batch = Array(queue[..<take])
            queue.removeFirst(take)
            return batch
        }
        var batch = spareQueue
        swap(&batch, &queue)
        spareQueue = []
        return batch
    }

    /// Gives a committed batch's storage back for the next swap (writer thread, outside the lock: only
    /// the array's storage is kept, its requests are released here). Storage grown far past a busy
    /// batch (a burst) is let go.
    func recycle(_ batch: inout [Request]) {
        guard batch.capacity <= Self.maxBatch else { batch = []; return }
        batch.removeAll(keepingCapacity: true)
        cond.lock()
        if spareQueue.capacity < batch.capacity { swap(&spareQueue, &batch) }
        cond.unlock()
    }
}
