package org.ketamine.hapipeer;

import org.ketamine.fhirvalidator.OfflineTerminologySupport;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.parser.ErrorHandlerAdapter;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.validation.IValidationContext;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.utilities.npm.NpmPackage;
import org.hl7.fhir.utilities.validation.ValidationMessage;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The peer's validation: HAPI's FhirInstanceValidator over an offline support chain (R4 core, the IG packages
 * found in shared/fhir-packages, common code systems, in-memory terminology, and {@link OfflineTerminologySupport}
 * for LOINC/SNOMED/RxNorm/CPT/HCPCS/ICD-10-CM/NDC). Two post-processing rules, like the validator tool:
 * issues that only concern an external terminology become INFORMATION, and ERRORs that name a canonical URL
 * this offline peer cannot resolve (an IG dependency that is not loaded) become WARNINGs: neither is the
 * sender's fault, so neither may turn into a 422.
 */
public final class PeerValidation {

	/** Package files loaded when present, in this order (the last loaded wins for unversioned canonicals). */
	public static final List<String> DEFAULT_PACKAGES = List.of(
			"hl7.fhir.us.core-3.1.1.tgz", "hl7.fhir.us.davinci-pas-2.2.1.tgz", "hl7.fhir.us.core-7.0.0.tgz");

	private static final Pattern URL = Pattern.compile("https?://[^\\s'\"`,()\\[\\]{}<>]+");

	private final FhirContext myCtx;
	private final ValidationSupportChain myChain;
	private final FhirInstanceValidator myModule;
	private final List<String> myLoaded = new ArrayList<>();
	private final List<String> myNotes = new ArrayList<>();

	public PeerValidation(FhirContext theCtx, Path thePackagesDir, List<String> thePackageFiles) throws IOException {
		myCtx = theCtx;
		PrePopulatedValidationSupport store = new PrePopulatedValidationSupport(theCtx);
		List<String> files = thePackageFiles == null || thePackageFiles.isEmpty() ? DEFAULT_PACKAGES : thePackageFiles;
		for (String f : files) {
			Path p = Path.of(f).isAbsolute() ? Path.of(f) : (thePackagesDir == null ? Path.of(f) : thePackagesDir.resolve(f));
			if (!Files.isRegularFile(p)) {
				myNotes.add("package not found (skipped): " + p);
				continue;
			}
			myLoaded.add(loadPackage(store, p));
		}
		myChain = new ValidationSupportChain(
				new OfflineTerminologySupport(theCtx),
				new DefaultProfileValidationSupport(theCtx),
				store,
				new CommonCodeSystemsTerminologyService(theCtx),
				new InMemoryTerminologyServerValidationSupport(theCtx),
				new SnapshotGeneratingValidationSupport(theCtx));
		myModule = new FilteringInstanceValidator(myChain);
		myModule.setAnyExtensionsAllowed(true);
		myModule.setErrorForUnknownProfiles(false);
	}

	private String loadPackage(PrePopulatedValidationSupport theStore, Path theTgz) throws IOException {
		NpmPackage pkg;
		try (InputStream is = Files.newInputStream(theTgz)) {
			pkg = NpmPackage.fromPackage(is);
		}
		IParser parser = myCtx.newJsonParser();
		parser.setParserErrorHandler(new ErrorHandlerAdapter()); // IG JSON may carry elements R4 does not know
		NpmPackage.NpmPackageFolder folder = pkg.getFolders().get("package");
		int count = 0;
		if (folder != null) {
			List<String> names = new ArrayList<>(folder.listFiles());
			names.sort(null);
			for (String name : names) {
				String lower = name.toLowerCase(Locale.ROOT);
				if (!lower.endsWith(".json") || lower.equals("package.json") || lower.startsWith(".")) {
					continue;
				}
				String json = new String(folder.getContent().get(name), StandardCharsets.UTF_8);
				if (!(json.contains("\"StructureDefinition\"") || json.contains("\"ValueSet\"")
						|| json.contains("\"CodeSystem\"") || json.contains("\"SearchParameter\""))) {
					continue;
				}
				try {
					var res = parser.parseResource(json);
					String type = myCtx.getResourceType(res);
					if (type.equals("StructureDefinition") || type.equals("ValueSet") || type.equals("CodeSystem")
							|| type.equals("SearchParameter")) {
						theStore.addResource(res);
						count++;
					}
				} catch (Exception e) {
					myNotes.add("could not load " + theTgz.getFileName() + "/" + name + ": " + e.getMessage());
				}
			}
		}
		return pkg.name() + "#" + pkg.version() + " (" + count + " resources)";
	}

	public FhirInstanceValidator module() {
		return myModule;
	}

	public List<String> loaded() {
		return myLoaded;
	}

	public List<String> notes() {
		return myNotes;
	}

	boolean resolvable(String theCanonical) {
		String url = theCanonical;
		while (url.endsWith(".") || url.endsWith(";") || url.endsWith(":")) {
			url = url.substring(0, url.length() - 1);
		}
		int bar = url.indexOf('|');
		String base = bar >= 0 ? url.substring(0, bar) : url;
		if (OfflineTerminologySupport.isExternal(base)) {
			return true;
		}
		for (String u : List.of(url, base)) {
			if (myChain.fetchStructureDefinition(u) != null || myChain.fetchValueSet(u) != null
					|| myChain.fetchCodeSystem(u) != null) {
				return true;
			}
		}
		// code systems handled by the terminology modules (UCUM, BCP-47, mime types...)
		var ctx = new ca.uhn.fhir.context.support.ValidationSupportContext(myChain);
		return myChain.isCodeSystemSupported(ctx, base) || myChain.isValueSetSupported(ctx, base);
	}

	private final class FilteringInstanceValidator extends FhirInstanceValidator {
		FilteringInstanceValidator(IValidationSupport theSupport) {
			super(theSupport);
		}

		@Override
		protected List<ValidationMessage> validate(IValidationContext<?> theCtx) {
			List<ValidationMessage> msgs = super.validate(theCtx);
			for (ValidationMessage m : msgs) {
				ValidationMessage.IssueSeverity level = m.getLevel();
				if (level == null || level == ValidationMessage.IssueSeverity.INFORMATION) {
					continue;
				}
				String text = m.getMessage() == null ? "" : m.getMessage();
				if (isTerminology(m) && OfflineTerminologySupport.mentionsExternal(text)) {
					m.setLevel(ValidationMessage.IssueSeverity.INFORMATION);
					continue;
				}
				if (level == ValidationMessage.IssueSeverity.ERROR || level == ValidationMessage.IssueSeverity.FATAL) {
					Matcher mt = URL.matcher(text);
					while (mt.find()) {
						if (!resolvable(mt.group())) {
							m.setLevel(ValidationMessage.IssueSeverity.WARNING);
							m.setMessage("[unresolvable offline, downgraded] " + text);
							break;
						}
					}
				}
			}
			return msgs;
		}
	}

	private static boolean isTerminology(ValidationMessage theVm) {
		String id = theVm.getMessageId();
		if (id == null || id.isBlank() || id.contains(" ")) {
			return true;
		}
		String u = id.toUpperCase(Locale.ROOT);
		return u.startsWith("TERMINOLOGY_") || u.contains("VALUESET") || u.contains("CODESYSTEM") || u.contains("_VS_")
				|| u.contains("TX_") || u.contains("UNKNOWN_CODE") || u.contains("NOT_IN_VS");
	}
}
