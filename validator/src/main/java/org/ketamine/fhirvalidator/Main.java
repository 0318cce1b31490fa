package org.ketamine.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.hl7.fhir.r4.model.CodeableConcept;
import org.hl7.fhir.r4.model.IntegerType;
import org.hl7.fhir.r4.model.OperationOutcome;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;

/**
 * Command line entry point.
 *
 * <pre>
 *   java -jar fhir-validator.jar validate [--packages DIR] [--extra DIR]... [--package FILE.tgz]... FILE...
 *   java -jar fhir-validator.jar serve [--port 0] [--packages DIR] [--extra DIR]... [--package FILE.tgz]...
 * </pre>
 *
 * validate prints {@code FILE<TAB>SEVERITY<TAB>LOCATION<TAB>MESSAGE} per issue and exits 1 when any
 * error/fatal was found. serve answers {@code POST /validate[?profile=URL]} with an OperationOutcome,
 * {@code GET /health}, {@code GET /dependencies}, after printing {@code LISTENING <port>}.
 */
public final class Main {

	private static final String EXT_LINE = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line";
	private static final String EXT_COL = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col";
	private static final String MSGID_SYSTEM = "http://hl7.org/fhir/java-core-messageId";

	private Main() {}

	private static final class Args {
		String mode;
		Path packages;
		final List<Path> extras = new ArrayList<>();
		final List<String> packageFiles = new ArrayList<>();
		final List<String> files = new ArrayList<>();
		int port;
	}

	private static void usage(String theError) {
		System.err.println("error: " + theError);
		System.err.println("usage: fhir-validator validate [--packages DIR] [--extra DIR]... [--package FILE.tgz]... FILE...");
		System.err.println("       fhir-validator serve [--port N] [--packages DIR] [--extra DIR]... [--package FILE.tgz]...");
		System.exit(2);
	}

	private static Args parse(String[] theArgs) {
		Args a = new Args();
		if (theArgs.length == 0) {
			usage("missing mode");
		}
		a.mode = theArgs[0];
		for (int i = 1; i < theArgs.length; i++) {
			String s = theArgs[i];
			switch (s) {
				case "--packages" -> a.packages = Paths.get(need(theArgs, ++i, s));
				case "--extra" -> a.extras.add(Paths.get(need(theArgs, ++i, s)));
				case "--package" -> a.packageFiles.add(need(theArgs, ++i, s));
				case "--port" -> a.port = Integer.parseInt(need(theArgs, ++i, s));
				default -> {
					if (s.startsWith("--")) {
						usage("unknown option " + s);
					}
					a.files.add(s);
				}
			}
		}
		if (a.packages == null) {
			String env = System.getenv("FHIR_PACKAGES_DIR");
			a.packages = env != null && !env.isBlank() ? Paths.get(env) : defaultPackagesDir();
		}
		return a;
	}

	private static String need(String[] theArgs, int theIdx, String theOpt) {
		if (theIdx >= theArgs.length) {
			usage(theOpt + " needs a value");
		}
		return theArgs[theIdx];
	}

	/** {@code <project root>/../shared/fhir-packages}, the jar living in {@code <root>/validator/target}. */
	private static Path defaultPackagesDir() {
		try {
			Path jar = Paths.get(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
			Path root = jar.getParent().getParent().getParent();
			return root.resolveSibling("shared").resolve("fhir-packages");
		} catch (Exception e) {
			return Paths.get("../shared/fhir-packages");
		}
	}

	public static void main(String[] theArgs) throws Exception {
		Args a = parse(theArgs);
		switch (a.mode) {
			case "validate" -> System.exit(runValidate(a));
			case "serve" -> runServe(a);
			default -> usage("unknown mode " + a.mode);
		}
	}

	private static ValidatorEngine load(Args a) throws IOException {
		long t0 = System.nanoTime();
		ValidatorEngine engine = new ValidatorEngine(a.packages, a.extras, a.packageFiles);
		for (String n : engine.notes()) {
			System.err.println("note: " + n);
		}
		for (String p : engine.store().loadProblems()) {
			System.err.println("note: could not load " + p);
		}
		System.err.printf("loaded %s in %d ms%n", engine.summary(), (System.nanoTime() - t0) / 1_000_000);
		return engine;
	}

	private static String clean(String s) {
		return s == null ? "" : s.replace('\t', ' ').replace('\r', ' ').replace('\n', ' ');
	}

	private static int runValidate(Args a) throws IOException {
		if (a.files.isEmpty()) {
			usage("no files to validate");
		}
		ValidatorEngine engine = load(a);
		PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
		boolean failed = false;
		for (String f : a.files) {
			String json;
			try {
				json = Files.readString(Paths.get(f), StandardCharsets.UTF_8);
			} catch (IOException e) {
				out.println(f + "\tFATAL\t\tcannot read file: " + clean(e.getMessage()));
				failed = true;
				continue;
			}
			for (ValidatorEngine.Issue i : engine.validate(json, null)) {
				out.println(f + "\t" + i.severity().toUpperCase() + "\t" + clean(i.location()) + "\t" + clean(i.message()));
				if ("error".equals(i.severity()) || "fatal".equals(i.severity())) {
					failed = true;
				}
			}
		}
		// issues from IG dependencies that are not loaded: once per run, not per resource
		for (ValidatorEngine.Issue i : engine.dependencyIssues()) {
			out.println("(run)\tWARNING\t\t" + clean(i.message()));
		}
		out.flush();
		return failed ? 1 : 0;
	}

	// ------------------------------------------------------------------ server

	static OperationOutcome toOutcome(List<ValidatorEngine.Issue> theIssues) {
		OperationOutcome oo = new OperationOutcome();
		for (ValidatorEngine.Issue i : theIssues) {
			OperationOutcome.OperationOutcomeIssueComponent c = oo.addIssue();
			c.setSeverity(OperationOutcome.IssueSeverity.fromCode(i.severity()));
			OperationOutcome.IssueType type;
			try {
				type = OperationOutcome.IssueType.fromCode(i.code());
			} catch (Exception e) {
				type = OperationOutcome.IssueType.PROCESSING;
			}
			c.setCode(type);
			c.setDiagnostics(i.message());
			if (i.location() != null && !i.location().isBlank()) {
				c.addExpression(i.location());
				c.addLocation(i.location());
			}
			if (i.messageId() != null) {
				c.setDetails(new CodeableConcept().addCoding(
						new org.hl7.fhir.r4.model.Coding(MSGID_SYSTEM, i.messageId(), null)));
			}
			if (i.line() > 0) {
				c.addExtension(EXT_LINE, new IntegerType(i.line()));
				c.addExtension(EXT_COL, new IntegerType(i.col()));
			}
		}
		if (theIssues.isEmpty()) {
			oo.addIssue().setSeverity(OperationOutcome.IssueSeverity.INFORMATION)
					.setCode(OperationOutcome.IssueType.INFORMATIONAL).setDiagnostics("No issues detected");
		}
		return oo;
	}

	private static void send(HttpExchange theEx, int theStatus, String theType, String theBody) throws IOException {
		byte[] b = theBody.getBytes(StandardCharsets.UTF_8);
		theEx.getResponseHeaders().set("Content-Type", theType);
		theEx.sendResponseHeaders(theStatus, b.length == 0 ? -1 : b.length);
		if (b.length > 0) {
			try (OutputStream os = theEx.getResponseBody()) {
				os.write(b);
			}
		}
		theEx.close();
	}

	private static String query(URI theUri, String theName) {
		String q = theUri.getRawQuery();
		if (q == null) {
			return null;
		}
		for (String part : q.split("&")) {
			int eq = part.indexOf('=');
			String k = eq >= 0 ? part.substring(0, eq) : part;
			if (URLDecoder.decode(k, StandardCharsets.UTF_8).equals(theName)) {
				return eq >= 0 ? URLDecoder.decode(part.substring(eq + 1), StandardCharsets.UTF_8) : "";
			}
		}
		return null;
	}

	private static void runServe(Args a) throws IOException {
		long t0 = System.nanoTime();
		ValidatorEngine engine = load(a);
		engine.warmUp();
		System.err.printf("warmed up in %d ms total%n", (System.nanoTime() - t0) / 1_000_000);
		if (!engine.missingPackages().isEmpty()) {
			System.err.println("warning: IG dependencies not loaded (their canonicals are reported once, as warnings): "
					+ engine.missingPackages());
		}
		FhirContext ctx = FhirContext.forR4Cached();
		HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), a.port), 16);
		server.setExecutor(Executors.newFixedThreadPool(4));
		server.createContext("/health", ex -> {
			try (ex) {
				send(ex, 200, "application/json", "{\"status\":\"ok\"}");
			}
		});
		server.createContext("/dependencies", ex -> {
			try (ex) {
				OperationOutcome oo = new OperationOutcome();
				for (ValidatorEngine.Issue i : engine.dependencyIssues()) {
					oo.addIssue().setSeverity(OperationOutcome.IssueSeverity.WARNING)
							.setCode(OperationOutcome.IssueType.NOTFOUND).setDiagnostics(i.message());
				}
				for (String mp : engine.missingPackages()) {
					oo.addIssue().setSeverity(OperationOutcome.IssueSeverity.WARNING)
							.setCode(OperationOutcome.IssueType.NOTFOUND)
							.setDiagnostics("IG dependency package not loaded: " + mp);
				}
				send(ex, 200, "application/fhir+json", ctx.newJsonParser().encodeResourceToString(oo));
			}
		});
		server.createContext("/validate", ex -> {
			try (ex) {
				if (!"POST".equalsIgnoreCase(ex.getRequestMethod())) {
					send(ex, 405, "text/plain", "POST a FHIR JSON resource");
					return;
				}
				String body;
				try (InputStream is = ex.getRequestBody()) {
					body = new String(is.readAllBytes(), StandardCharsets.UTF_8);
				}
				String profile = query(ex.getRequestURI(), "profile");
				List<ValidatorEngine.Issue> issues = engine.validate(body, profile);
				send(ex, 200, "application/fhir+json", ctx.newJsonParser().encodeResourceToString(toOutcome(issues)));
			} catch (Exception e) {
				send(ex, 500, "text/plain", String.valueOf(e));
			}
		});
		server.start();
		System.out.println("LISTENING " + server.getAddress().getPort());
		System.out.flush();
		Runtime.getRuntime().addShutdownHook(new Thread(() -> server.stop(0)));
	}

}
