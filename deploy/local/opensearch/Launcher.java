// Starts a single OpenSearch 2.19 node from plain jars (no distribution tarball).
//
// Compiled by deploy/local/stack with `javac --release 17` against the jars in
// <state>/opensearch/lib and run as `java -cp <classes>:<lib>/* Launcher <path.home>`.
// Settings come from <path.home>/config/opensearch.yml (rendered by the stack script).
//
// Going through Node's protected constructor lets us hand it the module classes that a
// distribution would load from its modules/ folder. This route skips the distribution's
// bootstrap checks, security manager and jar-hell check: fine for a local dev node only.

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class Launcher extends Node {

    // Module classes loaded when their jar is on the classpath (see pom.xml).
    private static final String[] MODULES = {
        "org.opensearch.transport.Netty4Plugin",               // transport-netty4-client
        "org.opensearch.analysis.common.CommonAnalysisPlugin", // analysis-common
        "org.opensearch.index.mapper.MapperExtrasPlugin",      // mapper-extras-client
        "org.opensearch.index.reindex.ReindexPlugin",          // reindex-client (_delete_by_query)
        "org.opensearch.painless.PainlessPlugin",              // lang-painless (scripts)
    };

    private Launcher(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(env, plugins, true);
    }

    @SuppressWarnings("unchecked")
    private static List<Class<? extends Plugin>> modules() {
        List<Class<? extends Plugin>> out = new ArrayList<>();
        for (String name : MODULES) {
            try {
                out.add((Class<? extends Plugin>) Class.forName(name));
            } catch (ClassNotFoundException e) {
                System.err.println("[launcher] module not on classpath, skipped: " + name);
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: Launcher <path.home>");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Settings input = Settings.builder().put("path.home", home.toString()).build();

        LogConfigurator.registerErrorListener();
        // Reads <home>/config/opensearch.yml on top of `input`.
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            input, Map.of(), home.resolve("config"), () -> "node-1");
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configureWithoutConfig(env.settings());

        final Launcher node = new Launcher(env, modules());
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "opensearch-shutdown"));

        node.start();
        System.out.println("[launcher] node started");
        // Node threads are daemons: keep the JVM alive until the shutdown hook runs.
        stopped.await();
    }
}
