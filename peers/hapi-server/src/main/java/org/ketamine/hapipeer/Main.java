package org.ketamine.hapipeer;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.interceptor.api.Hook;
import ca.uhn.fhir.interceptor.api.Interceptor;
import ca.uhn.fhir.interceptor.api.Pointcut;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.server.IResourceProvider;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.interceptor.RequestValidatingInterceptor;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.hl7.fhir.instance.model.api.IBaseConformance;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CapabilityStatement;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * HAPI FHIR R4 test server used as a sync peer (docs/decisions/0004-sync-test-peers.md).
 *
 * <pre>
 *   java -jar hapi-peer.jar [--port 0] [--host 127.0.0.1] [--no-validation] [--all-types] [--packages DIR] [--package FILE.tgz]... [--verbose]
 * </pre>
 *
 * Prints {@code LISTENING <port>} on stdout once ready; the FHIR base is {@code http://HOST:PORT/fhir}.
 * One in-memory {@link PeerResourceProvider} per resource type of {@link #SYNC_TYPES} (or all R4 types): create, PUT (update-as-create with
 * client ids), read, vread, instance history, delete, search by {@code _id} and {@code identifier}, and
 * {@code metadata}. No transaction/batch and no conditional operations; the CapabilityStatement says so.
 * With validation on (the default) a {@link RequestValidatingInterceptor} answers 422 + OperationOutcome
 * for a request resource with validation ERRORs; warnings pass.
 *
 * Test-only admin endpoints: {@code GET /__admin/count?type=T[&identifier=system|value]} returns
 * {@code {"count": N}}, {@code POST /__admin/reset} empties every provider.
 */
public final class Main {

	/**
	 * Resource types served by default: what the service sends to EHRs, and their usual neighbours.
	 * {@code --all-types} serves every R4 type (startup and the first CapabilityStatement get slower).
	 */
	public static final List<String> SYNC_TYPES = List.of(
			"AdverseEvent", "AllergyIntolerance", "Appointment", "AuditEvent", "Basic", "Binary", "Bundle", "CarePlan",
			"CareTeam", "Claim", "ClaimResponse", "CodeSystem", "Communication", "CommunicationRequest", "Composition",
			"Condition", "Consent", "Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse", "Device",
			"DiagnosticReport", "DocumentReference", "Encounter", "EpisodeOfCare", "ExplanationOfBenefit", "Flag", "Goal",
			"Immunization", "List", "Location", "Medication", "MedicationAdministration", "MedicationDispense",
			"MedicationRequest", "MedicationStatement", "Observation", "Organization", "Patient", "Practitioner",
			"PractitionerRole", "Procedure", "Provenance", "Questionnaire", "QuestionnaireResponse", "RelatedPerson",
			"ServiceRequest", "StructureDefinition", "Task", "ValueSet");

	private Main() {}

	public static void main(String[] theArgs) throws Exception {
		boolean verbose = List.of(theArgs).contains("--verbose");
		System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", verbose ? "info" : "warn");
		System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");

		int port = 0;
		String host = "127.0.0.1";
		boolean validation = true;
		boolean allTypes = false;
		Path packages = null;
		List<String> packageFiles = new ArrayList<>();
		for (int i = 0; i < theArgs.length; i++) {
			switch (theArgs[i]) {
				case "--port" -> port = Integer.parseInt(need(theArgs, ++i));
				case "--host" -> host = need(theArgs, ++i);
				case "--no-validation" -> validation = false;
				case "--all-types" -> allTypes = true;
				case "--packages" -> packages = Paths.get(need(theArgs, ++i));
				case "--package" -> packageFiles.add(need(theArgs, ++i));
				case "--verbose" -> { }
				default -> usage("unknown argument " + theArgs[i]);
			}
		}
		if (packages == null) {
			String env = System.getenv("FHIR_PACKAGES_DIR");
			packages = env != null && !env.isBlank() ? Paths.get(env) : defaultPackagesDir();
		}

		long t0 = System.nanoTime();
		FhirContext ctx = FhirContext.forR4Cached();

		Map<String, PeerResourceProvider<?>> providers = new LinkedHashMap<>();
		for (String type : allTypes ? new TreeSet<>(ctx.getResourceTypes()) : new TreeSet<>(SYNC_TYPES)) {
			Class<? extends IBaseResource> cls = ctx.getResourceDefinition(type).getImplementingClass();
			providers.put(type, newProvider(ctx, cls));
		}

		phase("providers", t0);
		RestfulServer fhir = new RestfulServer(ctx);
		fhir.setDefaultResponseEncoding(EncodingEnum.JSON);
		fhir.setDefaultPrettyPrint(false);
		fhir.setImplementationDescription("ketamine-interop HAPI FHIR sync test peer (in memory)");
		List<IResourceProvider> list = new ArrayList<>(providers.values());
		fhir.setResourceProviders(list);
		fhir.registerInterceptor(new CapabilityStatementCustomizer());

		// Validation support (IG packages, snapshots) loads on its own thread while Jetty starts and the
		// CapabilityStatement is generated; LISTENING is printed only when both are done.
		final Path packagesDir = packages;
		java.util.concurrent.CompletableFuture<RequestValidatingInterceptor> validatorReady = validation
				? java.util.concurrent.CompletableFuture.supplyAsync(() -> {
					try {
						PeerValidation pv = new PeerValidation(ctx, packagesDir, packageFiles);
						for (String n : pv.notes()) {
							System.err.println("note: " + n);
						}
						System.err.println("hapi-peer: validation packages " + pv.loaded());
						phase("packages loaded", t0);
						warmUp(ctx, pv);
						phase("validator warmed up", t0);
						RequestValidatingInterceptor rvi = new RequestValidatingInterceptor();
						rvi.addValidatorModule(pv.module());
						rvi.setFailOnSeverity(ResultSeverityEnum.ERROR);
						rvi.setAddResponseHeaderOnSeverity(null);
						return rvi;
					} catch (IOException e) {
						throw new java.io.UncheckedIOException(e);
					}
				})
				: java.util.concurrent.CompletableFuture.completedFuture(null);

		QueuedThreadPool pool = new QueuedThreadPool(64, 4);
		pool.setName("hapi-peer");
		Server server = new Server(pool);
		ServerConnector connector = new ServerConnector(server);
		connector.setHost(host);
		connector.setPort(port);
		server.addConnector(connector);
		ServletContextHandler handler = new ServletContextHandler();
		handler.setContextPath("/");
		handler.addServlet(new ServletHolder(fhir), "/fhir/*");
		handler.addServlet(new ServletHolder(new AdminServlet(providers)), "/__admin/*");
		server.setHandler(handler);
		server.setStopAtShutdown(true);
		server.start();
		phase("jetty started", t0);
		// The first CapabilityStatement costs seconds (one binding per resource type): pay it before LISTENING
		// so a client with a short timeout never meets it.
		warmMetadata(connector.getLocalPort(), host);
		phase("metadata warmed up", t0);
		RequestValidatingInterceptor rvi = validatorReady.join();
		if (rvi != null) {
			fhir.registerInterceptor(rvi);
		}

		System.err.printf("hapi-peer: ready in %d ms (validation %s)%n", (System.nanoTime() - t0) / 1_000_000,
				validation ? "on" : "off");
		System.out.println("LISTENING " + connector.getLocalPort());
		System.out.flush();
		server.join();
	}

	private static void phase(String theWhat, long theT0) {
		System.err.printf("hapi-peer: %s at %d ms%n", theWhat, (System.nanoTime() - theT0) / 1_000_000);
	}

	private static void warmMetadata(int thePort, String theHost) {
		try {
			var client = java.net.http.HttpClient.newHttpClient();
			var req = java.net.http.HttpRequest.newBuilder(
					java.net.URI.create("http://" + theHost + ":" + thePort + "/fhir/metadata"))
					.header("Accept", "application/fhir+json").GET().build();
			client.send(req, java.net.http.HttpResponse.BodyHandlers.discarding());
		} catch (Exception e) {
			System.err.println("note: metadata warm-up failed: " + e);
		}
	}

	@SuppressWarnings({"unchecked", "rawtypes"})
	private static PeerResourceProvider<?> newProvider(FhirContext theCtx, Class<? extends IBaseResource> theCls) {
		return new PeerResourceProvider(theCtx, theCls);
	}

	/** Validates a couple of resources so the first real request does not pay for snapshot generation. */
	private static void warmUp(FhirContext theCtx, PeerValidation thePv) {
		String patient = "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]},"
				+ "\"identifier\":[{\"system\":\"urn:oid:1.2.3\",\"value\":\"1\"}],\"name\":[{\"family\":\"Doe\",\"given\":[\"J\"]}],\"gender\":\"female\"}";
		String obs = "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"44249-1\"}]},"
				+ "\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2024-01-01T10:00:00Z\",\"valueInteger\":5}";
		var validator = theCtx.newValidator();
		validator.setValidateAgainstStandardSchema(false);
		validator.setValidateAgainstStandardSchematron(false);
		validator.registerValidatorModule(thePv.module());
		for (String r : List.of(patient, obs)) {
			try {
				validator.validateWithResult(r);
			} catch (Exception e) {
				System.err.println("note: warm-up validation failed: " + e);
			}
		}
	}

	/** {@code <root>/../shared/fhir-packages}, the jar living in {@code <root>/peers/hapi-server/target}. */
	private static Path defaultPackagesDir() {
		try {
			Path jar = Paths.get(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
			Path root = jar.getParent().getParent().getParent().getParent();
			return root.resolveSibling("shared").resolve("fhir-packages");
		} catch (Exception e) {
			return Paths.get("../shared/fhir-packages");
		}
	}

	private static String need(String[] theArgs, int theIdx) {
		if (theIdx >= theArgs.length) {
			usage(theArgs[theIdx - 1] + " needs a value");
		}
		return theArgs[theIdx];
	}

	private static void usage(String theError) {
		System.err.println("error: " + theError);
		System.err.println("usage: hapi-peer [--port N] [--host H] [--no-validation] [--all-types] [--packages DIR] [--package FILE.tgz]... [--verbose]");
		System.exit(2);
	}

	/**
	 * HashMapResourceProvider's update method carries a @ConditionalUrlParam (only "so subclasses can
	 * implement it"), which would make the generated CapabilityStatement claim conditionalUpdate; the provider
	 * rejects conditional updates, so say so. Also names the software.
	 */
	@Interceptor
	public static final class CapabilityStatementCustomizer {
		@Hook(Pointcut.SERVER_CAPABILITY_STATEMENT_GENERATED)
		public void customize(IBaseConformance theCapabilityStatement) {
			if (!(theCapabilityStatement instanceof CapabilityStatement cs)) {
				return;
			}
			cs.getSoftware().setName("ketamine-interop hapi-peer (HAPI FHIR RestfulServer + HashMapResourceProvider)");
			for (CapabilityStatement.CapabilityStatementRestComponent rest : cs.getRest()) {
				rest.getInteraction().removeIf(i -> i.getCode() == CapabilityStatement.SystemRestfulInteraction.TRANSACTION
						|| i.getCode() == CapabilityStatement.SystemRestfulInteraction.BATCH);
				for (CapabilityStatement.CapabilityStatementRestResourceComponent r : rest.getResource()) {
					r.setConditionalCreate(false);
					r.setConditionalUpdate(false);
					r.setConditionalRead(CapabilityStatement.ConditionalReadStatus.NOTSUPPORTED);
					r.setConditionalDelete(CapabilityStatement.ConditionalDeleteStatus.NOTSUPPORTED);
					r.setUpdateCreate(true);
					r.setVersioning(CapabilityStatement.ResourceVersionPolicy.VERSIONED);
				}
				rest.setDocumentation(("In-memory test peer: no transaction or batch, no conditional "
						+ "create/update/delete; PUT with a client-assigned id creates."));
			}
		}
	}

	/** Test-only admin endpoint: counts and reset. */
	static final class AdminServlet extends HttpServlet {
		private final Map<String, PeerResourceProvider<?>> myProviders;

		AdminServlet(Map<String, PeerResourceProvider<?>> theProviders) {
			myProviders = theProviders;
		}

		@Override
		protected void doGet(HttpServletRequest theReq, HttpServletResponse theResp) throws IOException {
			if (!"/count".equals(theReq.getPathInfo())) {
				send(theResp, 404, "{\"error\":\"unknown admin path\"}");
				return;
			}
			String type = theReq.getParameter("type");
			PeerResourceProvider<?> p = type == null ? null : myProviders.get(type);
			if (p == null) {
				send(theResp, 400, "{\"error\":\"unknown or missing type\"}");
				return;
			}
			String identifier = theReq.getParameter("identifier");
			int n = identifier == null ? p.countAll() : p.countByIdentifier(identifier);
			send(theResp, 200, "{\"count\":" + n + "}");
		}

		@Override
		protected void doPost(HttpServletRequest theReq, HttpServletResponse theResp) throws IOException {
			if (!"/reset".equals(theReq.getPathInfo())) {
				send(theResp, 404, "{\"error\":\"unknown admin path\"}");
				return;
			}
			for (PeerResourceProvider<?> p : myProviders.values()) {
				p.clear();
			}
			send(theResp, 200, "{\"reset\":true}");
		}

		private static void send(HttpServletResponse theResp, int theStatus, String theJson) throws IOException {
			byte[] b = theJson.getBytes(StandardCharsets.UTF_8);
			theResp.setStatus(theStatus);
			theResp.setContentType("application/json");
			theResp.setContentLength(b.length);
			theResp.getOutputStream().write(b);
		}
	}
}
