using System.Collections.Concurrent;
using System.Runtime;
using TorchSharp;

namespace LoraHub.Core.Runtime;

/// <summary>
/// Runs the parts of a no-grad forward pass (disjoint sets of examples) at the same time, each on its own dedicated
/// thread computing with its share of libtorch's threads (one on a 2-core machine).
/// Why: with OMP_WAIT_POLICY=PASSIVE (<see cref="TorchStartup"/>) every parallel region wakes a sleeping OpenMP thread,
/// which on a small VM costs 50–100 µs and doubled mid-size products and element-wise ops (docs/scale.md); parts of a
/// batch on one thread each never wake anyone, do not spin, and on a busy CPU only the part that lost its core waits.
/// The split is the caller's and does not depend on the machine, so the same inputs give the same numbers everywhere
/// the kernels do.
/// </summary>
public static class ForwardParts
{
    /// <summary>The environment variable that sets <see cref="Count"/> at start (1 turns the split off).</summary>
    public const string Variable = "LORAHUB_FORWARD_PARTS";

    public const int DefaultCount = 8;

    private static readonly object Gate = new();
    private static readonly List<Worker> workers = [];
    private static int count = Parse(Environment.GetEnvironmentVariable(Variable));

    [ThreadStatic] private static bool onWorker;

    /// <summary>
    /// The most parts a forward pass is split into (1–16; LORAHUB_FORWARD_PARTS, else <see cref="DefaultCount"/>).
    /// More parts than cores is intended: the kernel then balances uneven parts (5 examples in 2 parts are 3 + 2).
    /// </summary>
    public static int Count
    {
        get => Volatile.Read(ref count);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 16);
            Volatile.Write(ref count, value);
        }
    }

    internal static int Parse(string? value) =>
        int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 16 ? n : DefaultCount;

    /// <summary>libtorch threads a worker computes with: the process' threads shared out over the parts, at least one.</summary>
    public static int ThreadsPerPart => Workers(1)[0].Threads;

    /// <summary>
    /// Runs part(0) … part(parts − 1) concurrently and returns their results in order. Gradients are off in the
    /// parts. Called from a worker (a nested split), the parts run one after another on that thread. The parts must be
    /// pure: they are computed again when a garbage collection ran meanwhile.
    /// </summary>
    /// <remarks>
    /// Why no collection may run: TorchSharp passes temporary Scalars (the alpha of every <c>a + b</c>, the numbers
    /// of <c>x * 0.5</c>) to native code by raw handle, so a collection during the call can finalize the Scalar while
    /// libtorch reads it. Workers that allocate make collections during other workers' native calls likely (the
    /// contention bench failed with "Expected false to be true … toFloat" twice in ~30 compositions). So the parts run
    /// in a no-GC region, and results computed while a collection happened anyway are not trusted.
    /// </remarks>
    public static T[] Run<T>(int parts, Func<int, T> part)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parts, 1);
        if (parts == 1 || onWorker) return Serial(parts, part);
        var pool = Workers(Math.Min(parts, 16));
        for (var attempt = 1; ; attempt++)
        {
            T[] results;
            Exception?[] errors;
            bool disturbed;
            using (NoCollections.Enter()) // starting the region may collect first: count from inside it
            {
                var collections = GC.CollectionCount(0);
                (results, errors) = Attempt(pool, parts, part);
                disturbed = GC.CollectionCount(0) != collections;
            }
            // Computed again on the same workers (the same numbers as an undisturbed run); a third disturbed run is
            // accepted, as a one-batch evaluation accepts the same race from any other thread that allocates.
            if (disturbed && attempt < 3)
            {
                Interlocked.Increment(ref recomputed);
                continue;
            }
            // The first part's error, as the caller would have seen it running the batch itself.
            foreach (var e in errors)
                if (e is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();
            return results;
        }
    }

    private static (T[] Results, Exception?[] Errors) Attempt<T>(List<Worker> pool, int parts, Func<int, T> part)
    {
        var results = new T[parts];
        var errors = new Exception?[parts];
        using var done = new CountdownEvent(parts);
        for (var i = 0; i < parts; i++)
        {
            var index = i;
            pool[i % pool.Count].Post(() =>
            {
                try
                {
                    using var noGrad = torch.no_grad();
                    results[index] = part(index);
                }
                catch (Exception e)
                {
                    errors[index] = e;
                }
                finally
                {
                    done.Signal();
                }
            });
        }
        done.Wait();
        return (results, errors);
    }

    private static long recomputed;

    /// <summary>How many split runs were computed again because a garbage collection ran during them (for benches and tests).</summary>
    public static long Recomputed => Interlocked.Read(ref recomputed);

    private static T[] Serial<T>(int parts, Func<int, T> part)
    {
        var results = new T[parts];
        for (var i = 0; i < parts; i++) results[i] = part(i);
        return results;
    }

    /// <summary>A process-wide no-GC region held while any split run is in flight (counted: runs may overlap).</summary>
    private static class NoCollections
    {
        // Managed allocation of a forward pass is small (tensor wrappers: ~100 bytes per op); this leaves room for the
        // rest of the process (a Functions host's threads) during one evaluation.
        private const long Budget = 64L << 20;
        private static readonly object Lock = new();
        private static int holders;
        private static bool started;

        public static IDisposable Enter()
        {
            lock (Lock)
            {
                if (holders++ == 0)
                {
                    try
                    {
                        started = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(Budget, disallowFullBlockingGC: true);
                    }
                    catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException)
                    {
                        started = false; // another no-GC region, or a budget this GC cannot give: the collection check still guards
                    }
                }
            }
            return new Leave();
        }

        private sealed class Leave : IDisposable
        {
            private bool left;

            public void Dispose()
            {
                if (left) return;
                left = true;
                lock (Lock)
                {
                    if (--holders > 0 || !started) return;
                    started = false;
                    try
                    {
                        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
                    }
                    catch (InvalidOperationException)
                    {
                        // The region already ended with a collection (the budget ran out); the caller recomputes.
                    }
                }
            }
        }
    }

    private static List<Worker> Workers(int parts)
    {
        lock (Gate)
        {
            if (workers.Count >= parts) return workers;
            // libtorch keeps the thread count per thread (OpenMP's and MKL's settings) plus a process-wide value that
            // threads read on their first parallel op; the workers set their own, then the process-wide value is put back.
            var threads = torch.get_num_threads();
            var perPart = Math.Max(1, threads / Math.Max(parts, Count));
            var added = Enumerable.Range(workers.Count, parts - workers.Count).Select(i => new Worker(i, perPart)).ToList();
            foreach (var w in added) w.Ready.Wait();
            torch.set_num_threads(threads);
            workers.AddRange(added);
            return workers;
        }
    }

    private sealed class Worker
    {
        private readonly BlockingCollection<Action> queue = [];

        public Worker(int index, int threads)
        {
            Threads = threads;
            var thread = new Thread(() =>
            {
                onWorker = true;
                // The first op over more than a grain of values initialises this thread's libtorch threads from the
                // process-wide value; set_num_threads afterwards makes them this worker's own.
                using (var warm = torch.ones(1 << 16)) warm.add_(1);
                torch.set_num_threads(threads);
                Ready.Set();
                foreach (var work in queue.GetConsumingEnumerable()) work();
            })
            { IsBackground = true, Name = $"lorahub-forward-{index}" };
            thread.Start();
        }

        public int Threads { get; }

        public ManualResetEventSlim Ready { get; } = new();

        public void Post(Action work) => queue.Add(work);
    }
}
