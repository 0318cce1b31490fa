package org.ketamine.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ValidationOptions;
import ca.uhn.fhir.validation.IValidationContext;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.ElementDefinition;
import org.hl7.fhir.r4.model.StructureDefinition;
import org.hl7.fhir.r4.model.ValueSet;
import org.hl7.fhir.utilities.validation.ValidationMessage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The validation engine: HAPI FHIR's FhirInstanceValidator (the HL7 validator core) over a fully offline
 * support chain, plus the post-processing rules of this project:
 * <ul>
 *   <li>issues caused only by external terminologies (LOINC, SNOMED CT, ...) become INFORMATION prefixed
 *   "not checked offline: ";</li>
 *   <li>issues caused only by canonicals of IG dependencies that are not loaded (CRD, HRex, VSAC, ...) are
 *   removed from the per-resource result and recorded once per run as WARNINGs ({@link #dependencyIssues()}).</li>
 * </ul>
 */
public final class ValidatorEngine {

	/** Default IG package files, in load order (the last loaded wins for unversioned canonicals). */
	public static final List<String> DEFAULT_PACKAGES = List.of(
			"hl7.fhir.us.core-3.1.1.tgz", "hl7.fhir.us.davinci-pas-2.2.1.tgz", "hl7.fhir.us.core-7.0.0.tgz");

	/** One issue, already post-processed. */
	public record Issue(String severity, String code, String location, String message, String messageId,
			int line, int col) {}

	private static final Pattern URL = Pattern.compile("https?://[^\\s'\"`,()\\[\\]{}<>]+");

	private final FhirContext myCtx = FhirContext.forR4Cached();
	private final ConformanceStore myStore = new ConformanceStore(myCtx);
	private final OfflineTerminologySupport myOffline = new OfflineTerminologySupport(myCtx);
	private ValidationSupportChain myChain;
	private FhirValidator myValidator;
	private CapturingInstanceValidator myModule;

	private final List<String> myMissingPackages = new ArrayList<>();
	private final Set<String> myMissingPrefixes = new LinkedHashSet<>();
	/** canonical -> who references it (static scan of the loaded packages). */
	private final Map<String, String> myStaticUnresolved = new TreeMap<>();
	/** dependency canonical -> first message seen for it (runtime). */
	private final Map<String, String> myEncounteredDeps = new ConcurrentSkipListMap<>();
	private final List<String> myNotes = new ArrayList<>();
	private final org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport myStubs =
			new org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport(myCtx);
	private final Set<String> myStubbed = new TreeSet<>();

	/** Instance validator that keeps the raw core messages (with issue type) for the current thread. */
	static final class CapturingInstanceValidator extends FhirInstanceValidator {
		final ThreadLocal<List<ValidationMessage>> captured = new ThreadLocal<>();

		CapturingInstanceValidator(IValidationSupport theSupport) {
			super(theSupport);
		}

		@Override
		protected List<ValidationMessage> validate(IValidationContext<?> theCtx) {
			List<ValidationMessage> msgs = super.validate(theCtx);
			List<ValidationMessage> sink = captured.get();
			if (sink != null) {
				sink.addAll(msgs);
			}
			return msgs;
		}
	}

	public ValidatorEngine(Path thePackagesDir, List<Path> theExtraDirs, List<String> thePackageFiles)
			throws IOException {
		List<String> pkgFiles = thePackageFiles == null || thePackageFiles.isEmpty() ? DEFAULT_PACKAGES
				: thePackageFiles;
		if (thePackagesDir == null || !Files.isDirectory(thePackagesDir)) {
			myNotes.add("packages directory not found: " + thePackagesDir + " (only FHIR R4 core is loaded)");
		} else {
			for (String f : pkgFiles) {
				Path p = thePackagesDir.resolve(f);
				if (!Files.isRegularFile(p)) {
					myNotes.add("package file not found: " + p);
					continue;
				}
				myStore.loadPackage(p);
			}
		}
		for (Path d : theExtraDirs) {
			if (Files.isDirectory(d)) {
				myStore.loadDirectory(d);
			} else {
				myNotes.add("extra directory not found (skipped): " + d);
			}
		}
		myStore.lock();

		DefaultProfileValidationSupport core = new DefaultProfileValidationSupport(myCtx);
		VersionedCanonicalSupport coreVersioned = new VersionedCanonicalSupport(core);
		CommonCodeSystemsTerminologyService common = new CommonCodeSystemsTerminologyService(myCtx);
		InMemoryTerminologyServerValidationSupport inMemory = new InMemoryTerminologyServerValidationSupport(myCtx);

		// 1. probe chain (no stubs) to find the canonicals that the loaded IGs reference but nothing defines
		myChain = new ValidationSupportChain(myOffline, core, coreVersioned, myStore, common, inMemory);
		computeDependencies();

		// 2. the real chain: permissive stubs for missing profiles/extensions so that their absence is a
		//    run-level warning and never breaks slicing or profile matching
		myStubs.lock();
		myChain = new ValidationSupportChain(
				myOffline, core, coreVersioned, myStore, common, inMemory, myStubs,
				new SnapshotGeneratingValidationSupport(myCtx));

		myModule = new CapturingInstanceValidator(myChain);
		myModule.setAnyExtensionsAllowed(true);
		myModule.setErrorForUnknownProfiles(false);
		myValidator = myCtx.newValidator();
		myValidator.setValidateAgainstStandardSchema(false);
		myValidator.setValidateAgainstStandardSchematron(false);
		myValidator.registerValidatorModule(myModule);
	}

	// ---------------------------------------------------------------- dependencies

	private static String prefixForPackage(String theName) {
		String n = theName.toLowerCase(Locale.ROOT);
		if (n.startsWith("hl7.fhir.us.") || n.startsWith("hl7.fhir.uv.")) {
			String[] parts = n.split("\\.");
			if (parts.length >= 4) {
				if (parts[3].startsWith("extensions")) {
					return "http://hl7.org/fhir/StructureDefinition/";
				}
				return "http://hl7.org/fhir/" + parts[2] + "/" + parts[3];
			}
		}
		if (n.startsWith("hl7.terminology")) {
			return "http://terminology.hl7.org/";
		}
		if (n.equals("us.nlm.vsac")) {
			return "http://cts.nlm.nih.gov/fhir/";
		}
		if (n.equals("us.cdc.phinvads")) {
			return "http://phinvads.cdc.gov/";
		}
		if (n.startsWith("ihe.")) {
			return "http://profiles.ihe.net/";
		}
		return null;
	}

	private boolean resolvable(String theCanonical) {
		if (theCanonical == null || theCanonical.isBlank()) {
			return true;
		}
		String url = theCanonical;
		if (myChain.fetchStructureDefinition(url) != null || myChain.fetchValueSet(url) != null
				|| myChain.fetchCodeSystem(url) != null) {
			return true;
		}
		int bar = url.indexOf('|');
		if (bar > 0) {
			return resolvable(url.substring(0, bar));
		}
		// CodeSystems handled by the terminology modules (UCUM, BCP-47, mime types, external systems...)
		return OfflineTerminologySupport.isExternal(url)
				|| myChain.isCodeSystemSupported(new ca.uhn.fhir.context.support.ValidationSupportContext(myChain), url)
				|| myChain.isValueSetSupported(new ca.uhn.fhir.context.support.ValidationSupportContext(myChain), url);
	}

	private void computeDependencies() {
		Set<String> loaded = new LinkedHashSet<>();
		Set<String> loadedBaseNames = new LinkedHashSet<>();
		loaded.add("hl7.fhir.r4.core");
		for (ConformanceStore.LoadedPackage p : myStore.packages()) {
			loaded.add(p.name());
			loaded.add(p.name() + "#" + p.version());
			loadedBaseNames.add(p.name());
		}
		Set<String> missing = new TreeSet<>();
		for (ConformanceStore.LoadedPackage p : myStore.packages()) {
			for (String dep : p.dependencies()) {
				String name = dep.contains("#") ? dep.substring(0, dep.indexOf('#')) : dep;
				String version = dep.contains("#") ? dep.substring(dep.indexOf('#') + 1) : "";
				// aliased packages such as hl7.fhir.us.core.v311#3.1.1 (same content as hl7.fhir.us.core#3.1.1)
				String alias = name.replaceFirst("\\.v\\d+$", "");
				boolean aliased = !alias.equals(name);
				if (loaded.contains(name) || (aliased && loaded.contains(alias + "#" + version))) {
					continue;
				}
				missing.add(dep + " (needed by " + p.name() + "#" + p.version() + ")");
				String prefix = prefixForPackage(alias);
				if (prefix != null && !loadedBaseNames.contains(alias)) {
					myMissingPrefixes.add(prefix);
				}
			}
		}
		myMissingPackages.addAll(missing);

		// static scan: canonicals referenced by loaded IG resources that nothing can resolve
		for (IBaseResource r : myStore.fetchAllConformanceResources()) {
			if (r instanceof StructureDefinition sd) {
				String who = sd.getUrl();
				checkRef(sd.getBaseDefinition(), who);
				List<ElementDefinition> elements = new ArrayList<>(sd.getSnapshot().getElement());
				elements.addAll(sd.getDifferential().getElement());
				for (ElementDefinition ed : elements) {
					for (ElementDefinition.TypeRefComponent t : ed.getType()) {
						for (CanonicalType c : t.getProfile()) {
							if (checkRef(c.getValue(), who)) {
								stub(c.getValue(), t.getCode());
							}
						}
						for (CanonicalType c : t.getTargetProfile()) {
							checkRef(c.getValue(), who);
						}
					}
					if (ed.hasBinding() && ed.getBinding().hasValueSet()) {
						checkRef(ed.getBinding().getValueSet(), who);
					}
				}
			} else if (r instanceof ValueSet vs) {
				for (ValueSet.ConceptSetComponent inc : vs.getCompose().getInclude()) {
					checkRef(inc.getSystem(), vs.getUrl());
					for (CanonicalType c : inc.getValueSet()) {
						checkRef(c.getValue(), vs.getUrl());
					}
				}
			}
		}
	}

	/** Records an unresolvable canonical; true when it is unresolvable. */
	private boolean checkRef(String theCanonical, String theWho) {
		if (theCanonical == null || theCanonical.isBlank()) {
			return false;
		}
		if (myStaticUnresolved.containsKey(theCanonical)) {
			return true;
		}
		if (!resolvable(theCanonical)) {
			myStaticUnresolved.put(theCanonical, theWho);
			return true;
		}
		return false;
	}

	/** A permissive StructureDefinition standing in for a missing profile of type {@code theType}. */
	private void stub(String theCanonical, String theType) {
		if (theType == null || theType.isBlank() || myStubbed.contains(theCanonical)) {
			return;
		}
		String url = stripVersion(theCanonical);
		StructureDefinition base = (StructureDefinition) myChain.fetchStructureDefinition(
				"http://hl7.org/fhir/StructureDefinition/" + theType);
		if (base == null) {
			return;
		}
		StructureDefinition sd = new StructureDefinition();
		sd.setUrl(url);
		sd.setName("MissingDependencyStub");
		sd.setTitle("Permissive stand-in for " + url + " (defining package not loaded)");
		sd.setStatus(org.hl7.fhir.r4.model.Enumerations.PublicationStatus.DRAFT);
		sd.setFhirVersion(org.hl7.fhir.r4.model.Enumerations.FHIRVersion._4_0_1);
		sd.setKind(base.getKind());
		sd.setAbstract(false);
		sd.setType(theType);
		sd.setBaseDefinition(base.getUrl());
		sd.setDerivation(StructureDefinition.TypeDerivationRule.CONSTRAINT);
		if ("Extension".equals(theType)) {
			sd.addContext().setType(StructureDefinition.ExtensionContextType.ELEMENT).setExpression("Element");
			ElementDefinition root = sd.getDifferential().addElement();
			root.setPath("Extension").setId("Extension");
			ElementDefinition urlEl = sd.getDifferential().addElement();
			urlEl.setPath("Extension.url").setId("Extension.url");
			urlEl.setFixed(new org.hl7.fhir.r4.model.UriType(url));
		} else {
			ElementDefinition root = sd.getDifferential().addElement();
			root.setPath(theType).setId(theType);
		}
		// snapshot = base snapshot with the url fixed (differential is tiny)
		sd.setSnapshot(base.getSnapshot().copy());
		if ("Extension".equals(theType)) {
			for (ElementDefinition ed : sd.getSnapshot().getElement()) {
				if ("Extension.url".equals(ed.getPath())) {
					ed.setFixed(new org.hl7.fhir.r4.model.UriType(url));
				}
			}
		}
		myStubs.addStructureDefinition(sd);
		myStubbed.add(url);
	}

	private static String stripVersion(String theUrl) {
		int bar = theUrl.indexOf('|');
		return bar >= 0 ? theUrl.substring(0, bar) : theUrl;
	}

	/** The unresolvable dependency canonical this message is about, or null. */
	private String dependencyCanonical(String theMessage) {
		if (theMessage == null) {
			return null;
		}
		Matcher m = URL.matcher(theMessage);
		while (m.find()) {
			String url = m.group();
			while (url.endsWith(".") || url.endsWith(":") || url.endsWith(";")) {
				url = url.substring(0, url.length() - 1);
			}
			int hash = url.indexOf('#');
			if (hash > 0) {
				url = url.substring(0, hash);
			}
			String base = stripVersion(url);
			if (myStaticUnresolved.containsKey(url) || myStaticUnresolved.containsKey(base)) {
				return base;
			}
			for (String prefix : myMissingPrefixes) {
				if (base.startsWith(prefix) && !resolvable(base)) {
					return base;
				}
			}
		}
		return null;
	}

	// ---------------------------------------------------------------- validation

	/** Validates a resource or Bundle (JSON text), optionally against an extra profile. Thread-safe (serialized). */
	public synchronized List<Issue> validate(String theJson, String theProfile) {
		List<ValidationMessage> raw = new ArrayList<>();
		myModule.captured.set(raw);
		List<Issue> out = new ArrayList<>();
		try {
			ValidationOptions opts = new ValidationOptions();
			if (theProfile != null && !theProfile.isBlank()) {
				opts.addProfile(theProfile);
			}
			myValidator.validateWithResult(theJson, opts);
		} catch (Exception e) {
			out.add(new Issue("fatal", "exception", "", "validation failed: " + e, null, -1, -1));
			return out;
		} finally {
			myModule.captured.remove();
		}
		if (theProfile != null && !theProfile.isBlank() && myChain.fetchStructureDefinition(theProfile) == null) {
			// HAPI silently drops an unknown explicit profile when meta.profile resolves: make it visible
			out.add(new Issue("error", "not-found", "", "requested profile not found: " + theProfile
					+ " (not in FHIR R4 core, the loaded IG packages or the extra directories)",
					"VALIDATION_VAL_PROFILE_UNKNOWN", -1, -1));
		}
		for (String stubbed : myStubbed) {
			if (theJson.contains(stubbed)) {
				myEncounteredDeps.putIfAbsent(stubbed, "used by a validated resource, but its definition is in a "
						+ "package that is not loaded: a permissive stand-in was used (its content is not checked)");
			}
		}
		for (ValidationMessage vm : raw) {
			Issue i = postProcess(vm);
			if (i != null) {
				out.add(i);
			}
		}
		return out;
	}

	private static boolean isTerminologyMessage(ValidationMessage theVm) {
		String id = theVm.getMessageId();
		if (theVm.getType() == ValidationMessage.IssueType.CODEINVALID
				|| theVm.getType() == ValidationMessage.IssueType.NOTFOUND
				|| theVm.getType() == ValidationMessage.IssueType.NOTSUPPORTED
				|| theVm.getType() == ValidationMessage.IssueType.INFORMATIONAL) {
			return true;
		}
		if (id == null || id.contains(" ")) {
			return true; // messages straight from the terminology layer carry no key
		}
		String u = id.toUpperCase(Locale.ROOT);
		return u.startsWith("TERMINOLOGY_") || u.contains("VALUESET") || u.contains("CODESYSTEM")
				|| u.contains("_VS_") || u.contains("TX_") || u.contains("UNKNOWN_CODE") || u.contains("NOT_IN_VS");
	}

	private Issue postProcess(ValidationMessage theVm) {
		String sev = theVm.getLevel() == null ? "information" : theVm.getLevel().toCode();
		String code = theVm.getType() == null ? "processing" : theVm.getType().toCode();
		String msg = theVm.getMessage() == null ? "" : theVm.getMessage();
		String loc = theVm.getLocation() == null ? "" : theVm.getLocation();
		boolean serious = !"information".equals(sev);

		if (theVm.hasSliceInfo()) {
			StringBuilder sb = new StringBuilder(msg).append(" [details:");
			for (ValidationMessage si : theVm.getSliceInfo()) {
				sb.append(" ").append(si.getLevel() == null ? "" : si.getLevel().toCode().toUpperCase(Locale.ROOT))
						.append(" ").append(si.getLocation()).append(": ").append(si.getMessage()).append(";");
			}
			msg = sb.append("]").toString();
		}
		if (serious) {
			if (isTerminologyMessage(theVm) && OfflineTerminologySupport.mentionsExternal(theVm.getMessage())) {
				return new Issue("information", "informational", loc, OfflineTerminologySupport.PREFIX + msg,
						theVm.getMessageId(), theVm.getLine(), theVm.getCol());
			}
			String dep = dependencyCanonical(theVm.getMessage());
			if (dep != null) {
				myEncounteredDeps.putIfAbsent(dep, msg);
				return null;
			}
		}
		return new Issue(sev, code, loc, msg, theVm.getMessageId(), theVm.getLine(), theVm.getCol());
	}

	/** Issues about unresolvable dependencies met so far in this run (deduplicated, WARNING level). */
	public List<Issue> dependencyIssues() {
		List<Issue> out = new ArrayList<>();
		for (Map.Entry<String, String> e : myEncounteredDeps.entrySet()) {
			out.add(new Issue("warning", "not-found", "", "unresolved dependency (package not loaded): "
					+ e.getKey() + " -- first seen as: " + e.getValue(), "UNRESOLVED_DEPENDENCY", -1, -1));
		}
		return out;
	}

	public Set<String> stubbed() {
		return Collections.unmodifiableSet(myStubbed);
	}

	public Map<String, String> staticUnresolved() {
		return Collections.unmodifiableMap(myStaticUnresolved);
	}

	public List<String> missingPackages() {
		return myMissingPackages;
	}

	public List<String> notes() {
		return myNotes;
	}

	public ConformanceStore store() {
		return myStore;
	}

	public Map<String, Object> summary() {
		Map<String, Object> m = new LinkedHashMap<>();
		List<String> pk = new ArrayList<>();
		for (ConformanceStore.LoadedPackage p : myStore.packages()) {
			pk.add(p.name() + "#" + p.version() + " (" + p.resources() + " resources)");
		}
		m.put("packages", pk);
		m.put("extraResources", myStore.extraCount());
		m.put("missingPackages", myMissingPackages);
		m.put("unresolvedCanonicals", myStaticUnresolved.size());
		m.put("stubbedProfiles", myStubbed.size());
		return m;
	}

	/** Converts every StructureDefinition once and validates a few samples so the first real request is fast. */
	public void warmUp() {
		String bp = "{\"resourceType\":\"Observation\",\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure\"]},"
				+ "\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],"
				+ "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"85354-9\"}]},\"subject\":{\"reference\":\"Patient/p1\"},"
				+ "\"effectiveDateTime\":\"2024-01-01T10:00:00Z\",\"component\":["
				+ "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},\"valueQuantity\":{\"value\":120,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}},"
				+ "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8462-4\"}]},\"valueQuantity\":{\"value\":80,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}}]}";
		String patient = "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]},"
				+ "\"identifier\":[{\"system\":\"urn:oid:1.2.3\",\"value\":\"1\"}],\"name\":[{\"family\":\"Doe\",\"given\":[\"J\"]}],\"gender\":\"female\"}";
		String bundle = "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"fullUrl\":\"urn:uuid:0b0d3b4e-0000-4000-8000-000000000001\",\"resource\":"
				+ patient + "}]}";
		validate(bp, null);
		if (myModule.getWorkerContext() != null) {
			myModule.getWorkerContext().fetchResourcesByType(org.hl7.fhir.r5.model.StructureDefinition.class);
		}
		validate(patient, null);
		validate(bundle, null);
		myEncounteredDeps.clear();
	}
}
