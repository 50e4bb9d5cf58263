// hivemq-broker: the embedded HiveMQ Community Edition (com.hivemq:hivemq-community-edition-embedded)
// as the project's second MQTT broker for tests (scripts/broker2, MKF_BROKER2=hivemq). TCP on
// 127.0.0.1 only, every client allowed (HiveMQ CE without a security extension allows all),
// sessions, subscriptions, retained and queued messages in HiveMQ's file persistence in a data
// folder, so persistent sessions and their queues survive a broker restart.
//
// Every flag has an environment variable of the same meaning (flag wins):
//
//   -port            HIVEMQ_PORT            TCP port on 127.0.0.1 (default 18841)
//   -state           HIVEMQ_STATE           folder for conf/, data/, extensions/ (default ./hivemq-state);
//                                           conf/config.xml is written at every start from the flags
//   -pid             HIVEMQ_PID             write this process's PID there once the broker accepts
//                                           connections (default: none)
//   -max-queue-size  HIVEMQ_MAX_QUEUE_SIZE  <mqtt><queued-messages><max-queue-size>: QoS 1/2 messages
//                                           queued per client beyond the in-flight window, also while
//                                           offline (default 10000000; HiveMQ's own default is 1000,
//                                           and beyond it messages are discarded)
//   -receive-maximum HIVEMQ_RECEIVE_MAXIMUM <mqtt><receive-maximum><server-receive-maximum>: QoS 1/2
//                                           PUBLISHes a client may have unacknowledged towards the
//                                           broker (default 1024; HiveMQ's own default is 10)
//   -session-expiry  HIVEMQ_SESSION_EXPIRY  <mqtt><session-expiry><max-interval> in seconds
//                                           (default 4294967295, HiveMQ's own: never expires)
//   -max-inflight    HIVEMQ_MAX_INFLIGHT    messages HiveMQ sends a subscriber before its acks, at
//                                           most, whatever the client's receive-maximum (default 50,
//                                           HiveMQ CE's fixed value: CE has no setting for it, only
//                                           this embedded launcher can change it, for experiments)
//
// HiveMQ's own log (logback) goes to stdout. SIGTERM/SIGINT stop the broker cleanly (listeners
// closed, persistence flushed and closed) before the JVM exits.
package mkf;

import com.hivemq.configuration.service.InternalConfigurations;
import com.hivemq.embedded.EmbeddedHiveMQ;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

public final class Main {
  private Main() {}

  private static final Map<String, String> DEFAULTS = new LinkedHashMap<>();

  static {
    DEFAULTS.put("port", "18841");
    DEFAULTS.put("state", "hivemq-state");
    DEFAULTS.put("pid", "");
    DEFAULTS.put("max-queue-size", "10000000");
    DEFAULTS.put("receive-maximum", "1024");
    DEFAULTS.put("session-expiry", "4294967295");
    DEFAULTS.put("max-inflight", "50");
  }

  private static String envName(String flag) {
    return "HIVEMQ_" + flag.toUpperCase().replace('-', '_');
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> opts = new LinkedHashMap<>();
    for (Map.Entry<String, String> e : DEFAULTS.entrySet()) {
      String env = System.getenv(envName(e.getKey()));
      opts.put(e.getKey(), env != null && !env.isEmpty() ? env : e.getValue());
    }
    for (int i = 0; i < args.length; i++) {
      String a = args[i].replaceFirst("^--?", "");
      String value = null;
      int eq = a.indexOf('=');
      if (eq >= 0) {
        value = a.substring(eq + 1);
        a = a.substring(0, eq);
      }
      if (!DEFAULTS.containsKey(a)) die("unknown flag " + args[i] + "; flags: " + DEFAULTS.keySet());
      if (value == null) {
        if (i + 1 >= args.length) die("flag -" + a + " needs a value");
        value = args[++i];
      }
      opts.put(a, value);
    }
    return opts;
  }

  private static long number(Map<String, String> opts, String name, long min, long max) {
    long v;
    try {
      v = Long.parseLong(opts.get(name));
    } catch (NumberFormatException e) {
      die("-" + name + " (" + envName(name) + ")=" + opts.get(name) + " is not a number");
      return 0;
    }
    if (v < min || v > max) die("-" + name + " takes " + min + ".." + max + ", not " + v);
    return v;
  }

  private static void die(String msg) {
    System.err.println("hivemq-broker: " + msg);
    System.exit(2);
  }

  private static String configXml(long port, long queue, long receiveMaximum, long sessionExpiry) {
    return String.join(
        "\n",
        "<?xml version=\"1.0\"?>",
        "<!-- Written by brokers/hivemq (mkf.Main) at every start; edits are overwritten. -->",
        "<hivemq>",
        "  <listeners>",
        "    <tcp-listener>",
        "      <port>" + port + "</port>",
        "      <bind-address>127.0.0.1</bind-address>",
        "    </tcp-listener>",
        "  </listeners>",
        "  <mqtt>",
        "    <queued-messages>",
        "      <max-queue-size>" + queue + "</max-queue-size>",
        "      <strategy>discard</strategy>",
        "    </queued-messages>",
        "    <session-expiry>",
        "      <max-interval>" + sessionExpiry + "</max-interval>",
        "    </session-expiry>",
        "    <receive-maximum>",
        "      <server-receive-maximum>" + receiveMaximum + "</server-receive-maximum>",
        "    </receive-maximum>",
        "    <packets>",
        "      <max-packet-size>268435460</max-packet-size>",
        "    </packets>",
        "    <subscription-identifier><enabled>true</enabled></subscription-identifier>",
        "    <shared-subscriptions><enabled>true</enabled></shared-subscriptions>",
        "    <quality-of-service><max-qos>2</max-qos></quality-of-service>",
        "  </mqtt>",
        "  <persistence>",
        "    <mode>file</mode>",
        "  </persistence>",
        "  <anonymous-usage-statistics>",
        "    <enabled>false</enabled>",
        "  </anonymous-usage-statistics>",
        "</hivemq>",
        "");
  }

  // HiveMQ's own default, written so that HiveMQ does not warn that the file is missing.
  private static final String LOGBACK_XML =
      String.join(
          "\n",
          "<configuration scan=\"false\">",
          "  <appender name=\"CONSOLE\" class=\"ch.qos.logback.core.ConsoleAppender\">",
          "    <encoder><pattern>%-30(%d %level)- %msg%n%ex</pattern></encoder>",
          "  </appender>",
          "  <root level=\"INFO\"><appender-ref ref=\"CONSOLE\"/></root>",
          "  <logger name=\"jetbrains.exodus\" level=\"WARN\"/>",
          "  <logger name=\"org.eclipse.jetty\" level=\"ERROR\"/>",
          "  <logger name=\"com.google.common.util.concurrent.Futures.CombinedFuture\" level=\"OFF\"/>",
          "  <logger name=\"oshi\" level=\"ERROR\"/>",
          "</configuration>",
          "");

  private static void writeAtomically(Path file, String text) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.writeString(tmp, text, StandardCharsets.UTF_8);
    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = parse(args);
    long port = number(opts, "port", 1, 65535);
    long queue = number(opts, "max-queue-size", 1, Long.MAX_VALUE);
    long receiveMaximum = number(opts, "receive-maximum", 1, 65535);
    long sessionExpiry = number(opts, "session-expiry", 0, 4294967295L);
    long maxInflight = number(opts, "max-inflight", 1, 65535);
    Path state = Path.of(opts.get("state")).toAbsolutePath();
    Path conf = state.resolve("conf");
    Path data = state.resolve("data");
    Path extensions = state.resolve("extensions");
    Files.createDirectories(conf);
    Files.createDirectories(data);
    Files.createDirectories(extensions);
    writeAtomically(conf.resolve("config.xml"), configXml(port, queue, receiveMaximum, sessionExpiry));
    writeAtomically(conf.resolve("logback.xml"), LOGBACK_XML);

    // HiveMQ CE reads this when a connection starts sending; set before the broker starts.
    InternalConfigurations.MAX_INFLIGHT_WINDOW_SIZE_MESSAGES = (int) maxInflight;

    EmbeddedHiveMQ hivemq =
        EmbeddedHiveMQ.builder()
            .withConfigurationFolder(conf)
            .withDataFolder(data)
            .withExtensionsFolder(extensions)
            .build();

    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  try {
                    hivemq.stop().get(30, TimeUnit.SECONDS);
                    hivemq.close();
                    System.out.println("hivemq-broker stopped");
                  } catch (Exception e) {
                    System.err.println("hivemq-broker: stop failed: " + e);
                  }
                  System.out.flush();
                },
                "hivemq-broker-stop"));

    try {
      hivemq.start().get(120, TimeUnit.SECONDS);
    } catch (Exception e) {
      System.err.println("hivemq-broker: start failed: " + e);
      e.printStackTrace();
      System.exit(1);
    }
    String version = EmbeddedHiveMQ.class.getPackage().getImplementationVersion();
    if (!opts.get("pid").isEmpty()) {
      writeAtomically(Path.of(opts.get("pid")), ProcessHandle.current().pid() + "\n");
    }
    System.out.println(
        "hivemq-broker started: HiveMQ CE "
            + version
            + " on 127.0.0.1:"
            + port
            + ", state "
            + state
            + ", max-queue-size "
            + queue
            + ", server-receive-maximum "
            + receiveMaximum
            + ", session-expiry "
            + sessionExpiry
            + ", max-inflight "
            + maxInflight);
    System.out.flush();
    Thread.currentThread().join();
  }
}
